"""Callbacks a spec can list, with Lightning's names, arguments and meaning.

    callbacks:
      - ModelCheckpoint: {monitor: val/accuracy, mode: max}
      - EarlyStopping: {monitor: val/loss, patience: 3}
      - LearningRateMonitor
      - OnExceptionCheckpoint
"""

from __future__ import annotations

from declarative.callbacks.base import Callback, require_metric
from declarative.callbacks.early_stopping import EarlyStopping
from declarative.callbacks.lr_monitor import LearningRateMonitor
from declarative.callbacks.model_checkpoint import ModelCheckpoint
from declarative.callbacks.on_exception import OnExceptionCheckpoint
from declarative.registry import Registry

__all__ = ["CALLBACKS", "Callback", "EarlyStopping", "LearningRateMonitor", "ModelCheckpoint", "OnExceptionCheckpoint",
           "require_metric"]

CALLBACKS = Registry("callback", list_command="dtrain layers --kind callback")
CALLBACKS.add_class(ModelCheckpoint, constraints={"save_top_k": {"minimum": -1}, "every_n_epochs": {"minimum": 0},
                                                  "every_n_train_steps": {"minimum": 0}})
CALLBACKS.add_class(EarlyStopping, constraints={"patience": {"minimum": 0}, "min_delta": {"minimum": 0}})
CALLBACKS.add_class(LearningRateMonitor)
CALLBACKS.add_class(OnExceptionCheckpoint)
