"""Callbacks a spec can list, with Lightning's names, arguments and meaning.

    callbacks:
      - ModelCheckpoint: {monitor: val/accuracy, mode: max}
      - EarlyStopping: {monitor: val/loss, patience: 3}
      - LearningRateMonitor
"""

from __future__ import annotations

from declarative.callbacks.base import Callback, require_metric
from declarative.callbacks.early_stopping import EarlyStopping
from declarative.callbacks.lr_monitor import LearningRateMonitor
from declarative.callbacks.model_checkpoint import FILENAME_PATTERN, FILENAME_RULE, ModelCheckpoint
from declarative.registry import Param, Registry

__all__ = ["CALLBACKS", "Callback", "EarlyStopping", "LearningRateMonitor", "ModelCheckpoint", "require_metric"]

CALLBACKS = Registry("callback", list_command="dtrain layers --kind callback")
_checkpoint = CALLBACKS.add_class(ModelCheckpoint, constraints={"save_top_k": {"minimum": -1},
                                                               "every_n_epochs": {"minimum": 0}})
_checkpoint.params["filename"] = Param("filename", {"type": ["string", "null"], "pattern": FILENAME_PATTERN,
                                                    "x-pattern": FILENAME_RULE, "default": None}, False)
CALLBACKS.add_class(EarlyStopping, constraints={"patience": {"minimum": 0}, "min_delta": {"minimum": 0}})
CALLBACKS.add_class(LearningRateMonitor)
