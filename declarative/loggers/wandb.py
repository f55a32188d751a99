"""WandbLogger: metrics and settings to Weights & Biases (the `wandb` extra), online or offline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from declarative.loggers.base import Logger, add_prefix, scalar_items
from declarative.loggers.extras import require

__all__ = ["WandbLogger"]


class WandbLogger(Logger):
    """Log metrics and hyperparameters to Weights & Biases (``pip install 'dtrain[wandb]'``), as Lightning's WandbLogger.

    Metrics are plotted against ``trainer/global_step``. With `offline` (or ``WANDB_MODE=offline``) the run
    stays in ``<save_dir>/wandb/offline-run-*`` until ``wandb sync`` uploads it.

    Args:
        name: The run's display name.
        save_dir: The folder W&B writes its files into (``<save_dir>/wandb``).
        version: The run's id, to resume a W&B run (Lightning's name for `id`).
        offline: Keep the run on this machine, to upload later with ``wandb sync``.
        dir: Same as `save_dir` (W&B's own name); `save_dir` wins when both are given.
        id: Same as `version`.
        project: The W&B project; ``WANDB_PROJECT`` or ``lightning_logs`` when unset.
        log_model: At the end of a successful run, upload its checkpoints as a model artifact (not offline).
        prefix: Put ``<prefix>-`` before every metric name.
        checkpoint_name: The model artifact's name; ``model-<run id>`` when unset.
        entity: The W&B user or team the run belongs to.
        group: A group of runs, e.g. the folds of one experiment.
        tags: Tags of the run.
        notes: A longer description of the run.
        job_type: The kind of run, e.g. ``train``.
    """

    def __init__(self, name: str | None = None, save_dir: str = ".", version: str | None = None, offline: bool = False,
                 dir: str | None = None, id: str | None = None, project: str | None = None, log_model: bool = False,
                 prefix: str = "", checkpoint_name: str | None = None, entity: str | None = None,
                 group: str | None = None, tags: list[str] | None = None, notes: str | None = None,
                 job_type: str | None = None, _run_dir: str | None = None):
        require("wandb", "wandb")
        if offline and log_model:  # Lightning's rule
            raise ValueError("log_model: true and offline: true do not go together — checkpoints cannot be uploaded "
                             "offline")
        self._init = {"name": name, "project": project or os.environ.get("WANDB_PROJECT", "lightning_logs"),
                      "dir": save_dir or dir, "id": version or id, "resume": "allow", "entity": entity,
                      "group": group, "tags": tags, "notes": notes, "job_type": job_type,
                      "mode": "offline" if offline else None}
        self.log_model = log_model
        self.prefix = prefix
        self.checkpoint_name = checkpoint_name
        self._run_dir = _run_dir
        self._experiment = None

    def start(self) -> None:
        self.experiment  # noqa: B018 -- made on first use

    @property
    def experiment(self):
        """The W&B run, started on first use."""
        if self._experiment is None:
            import wandb

            Path(self._init["dir"]).mkdir(parents=True, exist_ok=True)  # W&B wants its folder to exist
            self._experiment = wandb.init(**{key: value for key, value in self._init.items() if value is not None})
            self._experiment.define_metric("trainer/global_step")
            self._experiment.define_metric("*", step_metric="trainer/global_step", step_sync=True)
        return self._experiment

    def log_hyperparams(self, params: dict[str, Any], metric_names: list[str]) -> None:
        """The resolved spec as the run's config."""
        self.experiment.config.update(params, allow_val_change=True)

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        """Scalars (per-class values as `<name>/<class>`) with ``trainer/global_step``; matrices are left to results.json."""
        self.experiment.log({**dict(scalar_items(add_prefix(metrics, self.prefix))), "trainer/global_step": step})

    def finalize(self, status: str) -> None:
        """Upload the checkpoints (with `log_model`) and end the run."""
        if self._experiment is None:
            return
        if self.log_model and status == "success" and self._run_dir is not None:
            import wandb

            checkpoints = sorted((Path(self._run_dir) / "checkpoints").glob("*.ckpt"))
            if checkpoints:
                artifact = wandb.Artifact(self.checkpoint_name or f"model-{self._experiment.id}", type="model")
                for checkpoint in checkpoints:
                    artifact.add_file(str(checkpoint))
                self._experiment.log_artifact(artifact, aliases=["latest"])
        self._experiment.finish(exit_code=0 if status == "success" else 1)
        self._experiment = None
