"""Loggers a spec can name (`logger: [TensorBoardLogger, CSVLogger, {MLFlowLogger: {...}}]`).

TensorBoard and CSV write into the run directory; MLflow and W&B are optional extras, listed (and so
validated) whether or not their package is installed, and imported only by a run that uses them.
"""

from __future__ import annotations

from declarative.loggers.base import Logger, flatten_params
from declarative.loggers.csv import CSVLogger
from declarative.loggers.mlflow import MLFlowLogger
from declarative.loggers.tensorboard import TensorBoardLogger
from declarative.loggers.wandb import WandbLogger
from declarative.registry import Param, Registry

__all__ = ["LOGGERS", "Logger", "CSVLogger", "MLFlowLogger", "TensorBoardLogger", "WandbLogger", "flatten_params"]

LOGGERS = Registry("logger", list_command="dtrain layers --kind logger")
# The run directory is dtrain's to choose (runs/<name>/version_<N>/), not the spec's: TensorBoard's and CSV's
# save_dir is the run folder; their name/version are sub-folders of it.
RUN_FOLDER = {"save_dir": "the run folder (trainer.default_root_dir/<spec name>/version_<N>) is its save_dir; "
                          "name and version make sub-folders of it"}
LOGGERS.add_class(TensorBoardLogger, skip={"save_dir"}, left_out=RUN_FOLDER,
                  constraints={"max_queue": {"minimum": 1}, "flush_secs": {"minimum": 1}})
LOGGERS.add_class(CSVLogger, skip={"save_dir"}, left_out=RUN_FOLDER, constraints={"flush_logs_every_n_steps": {"minimum": 1}})
# A mapping of tags, which the schema generator leaves out of signatures (torch's mappings are not spec material).
LOGGERS.add_class(MLFlowLogger).params["tags"] = Param("tags", {
    "anyOf": [{"type": "object", "propertyNames": {"pattern": "^[A-Za-z0-9_.:/ -]+$"},  # what MLflow takes in a key
               "additionalProperties": {"type": ["string", "number", "boolean"]}}, {"type": "null"}],
    "default": None, "description": "Tags of the run, e.g. {team: vision}."}, required=False)
LOGGERS.add_class(WandbLogger)
for _name, _reason in (
        ("CometLogger", "Comet's client is not a dependency; MLflow and W&B are the optional extras"),
        ("NeptuneLogger", "Neptune's client is not a dependency; MLflow and W&B are the optional extras"),
        ("NeptuneScaleLogger", "Neptune's client is not a dependency; MLflow and W&B are the optional extras")):
    LOGGERS.exclude(_name, _reason)
