"""Callbacks a spec can list, with Lightning's names, arguments and meaning.

    callbacks:
      - ModelCheckpoint: {monitor: val/accuracy, mode: max}
      - EarlyStopping: {monitor: val/loss, patience: 3}
      - LearningRateMonitor
      - OnExceptionCheckpoint
      - {ModelSummary: {max_depth: 2}}
      - {RichProgressBar: {refresh_rate: 10, leave: true}}
      - LearningRateFinder            # run before training (declarative/assembly/tuning.py)
      - BatchSizeFinder
"""

from __future__ import annotations

import inspect

from declarative.callbacks.accumulation import GradientAccumulationScheduler
from declarative.callbacks.base import Callback, callback_results, require_metric
from declarative.callbacks.batch_size_finder import BatchSizeFinder
from declarative.callbacks.device_stats import DeviceStatsMonitor
from declarative.callbacks.early_stopping import EarlyStopping
from declarative.callbacks.finetuning import BackboneFinetuning
from declarative.callbacks.lr_finder import LearningRateFinder
from declarative.callbacks.lr_monitor import LearningRateMonitor
from declarative.callbacks.model_checkpoint import FILENAME_PATTERN, FILENAME_RULE, ModelCheckpoint
from declarative.callbacks.model_summary import ModelSummary, RichModelSummary
from declarative.callbacks.on_exception import OnExceptionCheckpoint
from declarative.callbacks.progress_bars import RichProgressBar, TQDMProgressBar
from declarative.callbacks.pruning import AMOUNT_SCHEMA, ModelPruning
from declarative.callbacks.spike import SpikeDetection, TrainingSpikeError
from declarative.callbacks.throughput import ThroughputMonitor
from declarative.callbacks.timer import DURATION_SCHEMA, Timer
from declarative.callbacks.weight_averaging import EMAWeightAveraging, StochasticWeightAveraging, WeightAveraging
from declarative.registry import Entry, Param, Registry, first_line, signature_params
from declarative.training.progress import THEME_FIELDS

__all__ = ["BackboneFinetuning", "CALLBACKS", "Callback", "EarlyStopping", "LearningRateMonitor", "ModelCheckpoint", "require_metric",
           "EMAWeightAveraging", "ModelSummary", "OnExceptionCheckpoint", "RichModelSummary", "RichProgressBar",
           "StochasticWeightAveraging", "TQDMProgressBar", "WeightAveraging",
           "callback_results", "DeviceStatsMonitor", "GradientAccumulationScheduler", "ModelPruning", "SpikeDetection",
           "ThroughputMonitor", "Timer", "TrainingSpikeError"]
__all__ += ["BatchSizeFinder", "LearningRateFinder"]

CALLBACKS = Registry("callback", list_command="dtrain layers --kind callback")
_checkpoint = CALLBACKS.add_class(ModelCheckpoint, constraints={"save_top_k": {"minimum": -1},
                                                               "every_n_epochs": {"minimum": 0},
                                                               "every_n_train_steps": {"minimum": 0}})
_checkpoint.params["filename"] = Param("filename", {"type": ["string", "null"], "pattern": FILENAME_PATTERN,
                                                    "x-pattern": FILENAME_RULE, "default": None}, False)
CALLBACKS.add_class(EarlyStopping, constraints={"patience": {"minimum": 0}, "min_delta": {"minimum": 0}})
CALLBACKS.add_class(LearningRateMonitor)
CALLBACKS.add_class(BackboneFinetuning, constraints={"unfreeze_backbone_at_epoch": {"minimum": 0},
                                                   "backbone_initial_ratio_lr": {"minimum": 0},
                                                   "backbone_initial_lr": {"minimum": 0}, "lr_multiplier": {"minimum": 0}})
CALLBACKS.add_class(WeightAveraging)
CALLBACKS.add_class(EMAWeightAveraging, constraints={"decay": {"minimum": 0, "maximum": 1},
                                                   "update_every_n_steps": {"minimum": 1},
                                                   "update_starting_at_step": {"minimum": 0},
                                                   "update_starting_at_epoch": {"minimum": 0}})
CALLBACKS.add_class(StochasticWeightAveraging, constraints={"swa_lrs": {"minimum": 0}, "swa_epoch_start": {"minimum": 0},
                                                          "annealing_epochs": {"minimum": 1}})
CALLBACKS.add_class(OnExceptionCheckpoint)
CALLBACKS.add_class(ModelSummary, constraints={"max_depth": {"minimum": -1}})
CALLBACKS.add_class(RichModelSummary, constraints={"max_depth": {"minimum": -1}})
_THEME = {"type": ["object", "null"], "properties": {field: {"type": "string"} for field in THEME_FIELDS},
          "additionalProperties": False, "default": None}
CALLBACKS.add_class(RichProgressBar, constraints={"refresh_rate": {"minimum": 0}}).params["theme"] = Param(
    "theme", _THEME, False)
CALLBACKS.add_class(TQDMProgressBar, constraints={"refresh_rate": {"minimum": 0}, "process_position": {"minimum": 0}})


def _add_with_mappings(cls: type, mappings: dict[str, Param], constraints: dict[str, dict] | None = None) -> Entry:
    """Register a callback some of whose arguments take a mapping (annotations cannot describe those for a spec)."""
    params = {**signature_params(cls.__init__, skip=mappings, constraints=constraints), **mappings}
    order = list(inspect.signature(cls.__init__).parameters)
    return CALLBACKS.add(Entry(cls.__name__, cls, dict(sorted(params.items(), key=lambda item: order.index(item[0]))),
                               first_line(cls.__doc__)))


_add_with_mappings(GradientAccumulationScheduler, {"scheduling": Param("scheduling", {
    "type": "object", "propertyNames": {"pattern": "^[0-9]+$", "x-pattern": "is not an epoch: keys are epochs, 0 or more"},
    "additionalProperties": {"type": "integer", "minimum": 1},
    "description": "{epoch: accumulation_factor}, epochs 0-based, e.g. {0: 8, 4: 4, 8: 1}."}, True)})
_add_with_mappings(Timer, {"duration": Param("duration", DURATION_SCHEMA, False)})
CALLBACKS.add_class(SpikeDetection, constraints={"window": {"minimum": 1}, "warmup": {"minimum": 0}})
_add_with_mappings(ModelPruning, {"amount": Param("amount", AMOUNT_SCHEMA, False)}, constraints={"pruning_dim": {"minimum": 0},
                                                                                   "pruning_norm": {"minimum": 1}})
CALLBACKS.add_class(ThroughputMonitor, constraints={"window_size": {"minimum": 2}})
CALLBACKS.add_class(DeviceStatsMonitor)
CALLBACKS.add_class(LearningRateFinder, constraints={"min_lr": {"exclusiveMinimum": 0},
                                                   "max_lr": {"exclusiveMinimum": 0},
                                                   "num_training_steps": {"minimum": 1},
                                                   "early_stop_threshold": {"exclusiveMinimum": 0}})
CALLBACKS.add_class(BatchSizeFinder, constraints={"steps_per_trial": {"minimum": 1}, "init_val": {"minimum": 1},
                                                "max_trials": {"minimum": 1},
                                                "margin": {"minimum": 0, "exclusiveMaximum": 1},
                                                "max_val": {"minimum": 1}})
