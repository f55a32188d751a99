"""MLFlowLogger: metrics and settings to an MLflow tracking store (the `mlflow` extra)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, Literal

from declarative.loggers.base import Logger, add_prefix, flatten_params, scalar_items
from declarative.loggers.extras import require

__all__ = ["MLFlowLogger"]

_STATUS = {"success": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}  # dtrain's → MLflow's run status
_INVALID_KEY = re.compile(r"[^a-zA-Z0-9_/. -]+")  # what MLflow refuses in a metric name, removed as Lightning does


class MLFlowLogger(Logger):
    """Log metrics and hyperparameters to MLflow (``pip install 'dtrain[mlflow]'``), as Lightning's MLFlowLogger.

    With no `tracking_uri` (and no ``MLFLOW_TRACKING_URI``), runs go to the file store in `save_dir`
    (``mlflow ui --backend-store-uri ./mlruns`` shows them). A resumed run logs again the steps after
    its checkpoint; MLflow keeps both values of those steps.

    Args:
        experiment_name: The MLflow experiment, made when it does not exist.
        run_name: The run's name (the ``mlflow.runName`` tag).
        tracking_uri: The tracking server or store, e.g. ``http://localhost:5000`` or ``file:./mlruns``.
        tags: Tags of the run.
        save_dir: The local folder of the file store when there is no tracking URI.
        log_model: true: at the end of a successful run, upload its checkpoints as artifacts
            (``model/checkpoints/<name>/``); ``all``: upload each checkpoint as soon as it is written.
        prefix: Put ``<prefix>-`` before every metric name.
        artifact_location: Where a new experiment keeps its artifacts.
        run_id: Log into this existing run instead of a new one.
        synchronous: Wait for each logging call (true) or log in the background (false); MLflow's default when unset.
        checkpoint_path_prefix: A folder the checkpoint artifacts go under (``<prefix>/model/checkpoints/``).
    """

    def __init__(self, experiment_name: str = "lightning_logs", run_name: str | None = None,
                 tracking_uri: str | None = None, tags: dict[str, str | int | float | bool] | None = None, save_dir: str = "./mlruns",
                 log_model: Literal[True, False, "all"] = False, prefix: str = "", artifact_location: str | None = None,
                 run_id: str | None = None, synchronous: bool | None = None, checkpoint_path_prefix: str = "",
                 _run_dir: str | None = None):
        require("mlflow", "mlflow")
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.tracking_uri = (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
                             or f"file:{Path(save_dir).resolve()}")
        self.tags = {key: str(value) for key, value in (tags or {}).items()}
        self.log_model = log_model
        self.prefix = prefix
        self.artifact_location = artifact_location
        self.run_id = run_id
        self.synchronous = synchronous
        self.checkpoint_path_prefix = checkpoint_path_prefix.strip("/")
        self._run_dir = _run_dir
        self._client = None

    def start(self) -> None:
        self.experiment  # noqa: B018 -- made on first use

    @property
    def experiment(self):
        """MLflow's client, with the run made (or found) on first use."""
        if self._client is None:
            from mlflow.tracking import MlflowClient
            from mlflow.tracking.context.registry import resolve_tags

            if self.tracking_uri.startswith("file:"):  # MLflow 3 runs its file store (Lightning's default) on request
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            client = MlflowClient(self.tracking_uri)
            if self.run_id is None:
                experiment = client.get_experiment_by_name(self.experiment_name)
                experiment_id = (experiment.experiment_id if experiment is not None else
                                 client.create_experiment(self.experiment_name, self.artifact_location))
                tags = dict(self.tags)
                if self.run_name is not None:
                    tags["mlflow.runName"] = self.run_name
                self.run_id = client.create_run(experiment_id, tags=resolve_tags(tags)).info.run_id
            self._client = client
        return self._client

    def log_hyperparams(self, params: dict[str, Any], metric_names: list[str]) -> None:
        """The resolved spec, flattened (`trainer/max_epochs`), as the run's parameters."""
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        items = [Param(key, str(value)[:MAX_PARAM_VAL_LENGTH]) for key, value in flatten_params(params).items()]
        for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            self._log_batch(params=items[start:start + MAX_PARAMS_TAGS_PER_BATCH])

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        """Scalars (per-class values as `<name>/<class>`) at `step`; matrices are left to results.json."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._log_batch(metrics=[Metric(_INVALID_KEY.sub("", name), float(value), now, step)
                                 for name, value in scalar_items(add_prefix(metrics, self.prefix))])

    def _log_batch(self, **entities: Any) -> None:
        extra = {} if self.synchronous is None else {"synchronous": self.synchronous}
        self.experiment.log_batch(self.run_id, **entities, **extra)

    def finalize(self, status: str) -> None:
        """Upload the checkpoints (with `log_model`) and mark the run FINISHED, FAILED or KILLED."""
        if self._client is None:
            return
        if self.log_model is True and status == "success" and self._run_dir is not None:
            for checkpoint in sorted((Path(self._run_dir) / "checkpoints").glob("*.ckpt")):
                self._upload(checkpoint)
        self._client.set_terminated(self.run_id, _STATUS.get(status, "FINISHED"))

    def after_save_checkpoint(self, path: str) -> None:
        """With `log_model: all`, each checkpoint goes up as soon as the trainer has written it."""
        if self.log_model == "all":
            self._upload(Path(path))

    def _upload(self, checkpoint: Path) -> None:
        folder = f"model/checkpoints/{checkpoint.stem}"
        prefixed = f"{self.checkpoint_path_prefix}/{folder}" if self.checkpoint_path_prefix else folder
        self.experiment.log_artifact(self.run_id, str(checkpoint), prefixed)
