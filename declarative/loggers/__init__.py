"""Loggers a spec can name (`logger: [TensorBoardLogger, CSVLogger]`), writing into the run directory."""

from __future__ import annotations

from declarative.loggers.base import Logger, flatten_params
from declarative.loggers.csv import CSVLogger
from declarative.loggers.tensorboard import TensorBoardLogger
from declarative.registry import Registry

__all__ = ["LOGGERS", "Logger", "CSVLogger", "TensorBoardLogger", "flatten_params"]

LOGGERS = Registry("logger", list_command="dtrain layers --kind logger")
# The run directory is dtrain's to choose (runs/<name>/version_<N>/), not the spec's.
LOGGERS.add_class(TensorBoardLogger, skip={"save_dir"})
LOGGERS.add_class(CSVLogger, skip={"save_dir"})
