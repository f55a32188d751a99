"""Metrics accumulated on the device over a run's batches and read once, at the end.

Each metric keeps a few tensors that add up across batches (a count of correct predictions and
a count of samples, say), so its value is exact over all samples, not a mean of batch means.
Updating never leaves the device; `StageMetrics.compute` reads every value with one host sync.
The same sums add up across processes (`torch.distributed.all_reduce` on `states()`), which is
all a distributed run will need.
"""

from __future__ import annotations

from typing import Callable

import torch

from declarative.errors import did_you_mean
from declarative.registry import Registry, parse_item
from declarative.training.classification_metrics import (Accuracy, ConfusionMatrix, F1Score, JaccardIndex,
                                                         Precision, Recall)
from declarative.training.metric_base import MeanMetric, Metric
from declarative.training.regression_metrics import MeanAbsoluteError, MeanSquaredError, R2Score

__all__ = ["METRICS", "Metric", "MeanMetric", "EmptyBatch", "Accuracy", "Precision", "Recall", "F1Score", "JaccardIndex",
           "ConfusionMatrix", "MeanSquaredError", "MeanAbsoluteError", "R2Score", "StageMetrics", "MetricInputError",
           "stage_metric_names", "unlogged_metric", "metric_is_scalar"]

METRICS = Registry("metric", list_command="dtrain layers --kind metric")

# Outputs and targets of no samples, on a device, shaped as the run's: `(0, *output)`, `(0, *target)`.
EmptyBatch = Callable[[torch.device], "tuple[torch.Tensor, torch.Tensor]"]


class MetricInputError(ValueError):
    """Outputs or targets a metric cannot read; `index` is the metric's place in the spec's list."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


for _cls, _name in ((Accuracy, "accuracy"), (Precision, "precision"), (Recall, "recall"), (F1Score, "f1"),
                    (JaccardIndex, "iou"), (ConfusionMatrix, "confusion_matrix"), (MeanSquaredError, "mse"),
                    (MeanAbsoluteError, "mae"), (R2Score, "r2")):
    # `task` is the run's (declarative/training/tasks.py), not each metric's.
    METRICS.add_class(_cls, name=_name, skip={"task"},
                      constraints={"top_k": {"minimum": 1}, "threshold": {"minimum": 0, "maximum": 1}})


def metric_is_scalar(item: str | dict, task: str | None) -> bool:
    """Whether a spec's metric item logs one number (else a per-class vector or a matrix), before building it."""
    name, kwargs = parse_item(item)
    if name == "confusion_matrix":
        return False
    return kwargs.get("average") != "none" or task == "binary"


def batch_size(targets: object) -> int:
    """Samples in a batch, read from the targets' shape (no sync)."""
    if isinstance(targets, torch.Tensor):
        return targets.shape[0] if targets.ndim else 1
    return len(targets)  # type: ignore[arg-type]


def metric_log_name(item: str | dict) -> str:
    """The name a spec's metric item logs under: its name, with `_top<k>` and `_<average>` when those
    differ from the default (`[accuracy, {accuracy: {top_k: 5}}]` logs `accuracy` and `accuracy_top5`)."""
    name, kwargs = parse_item(item)
    log_name = name
    if kwargs.get("top_k", 1) != 1:
        log_name += f"_top{kwargs['top_k']}"
    if "average" in kwargs and name in METRICS:
        default = METRICS[name].params["average"].schema.get("default") if "average" in METRICS[name].params else None
        if kwargs["average"] != default:
            log_name += f"_{kwargs['average']}"
    return log_name


def duplicate_metrics(items: list) -> list[tuple[int, str]]:
    """(index, name) of each metric item that logs under a name an earlier item already takes."""
    seen: set[str] = set()
    duplicates = []
    for index, item in enumerate(items):
        name = metric_log_name(item)
        if name in seen:
            duplicates.append((index, name))
        seen.add(name)
    return duplicates


def stage_metric_names(stage: str, metric_names: list[str]) -> list[str]:
    """What a stage logs as scalars: `<stage>/loss`, then `<stage>/<metric>` for each named metric."""
    return [f"{stage}/loss"] + [f"{stage}/{name}" for name in metric_names]


def unlogged_metric(name: str, logged: list[str], has_validation: bool, what: str,
                    tables: list[str] = ()) -> str | None:
    """Why `name` (a monitor) is no scalar metric the run logs, or None when it is one.

    `tables` are the names of the run's non-scalar metrics (confusion matrices, per-class values).
    """
    if name in logged:
        return None
    if name.startswith("val/") and not has_validation:
        return (f"{what} '{name}' needs validation, but this run has none: add data.val "
                "(e.g. val: {fraction: 0.1}) and keep trainer.limit_val_batches above 0")
    if name in tables:
        return f"{what} '{name}' is not one number (a matrix or per-class values), so it cannot be monitored"
    if f"{name}_none" in tables:  # `{f1: {average: none}}` logs val/f1_none, not val/f1
        return (f"{what} '{name}' is not logged: the run logs '{name}_none' (per-class values), which cannot be "
                f"monitored — list the metric also with its default average (metrics: [..., "
                f"{name.split('/', 1)[1]}]) to monitor that")
    hint = did_you_mean(name, logged)
    return (f"{what} '{name}' is not a metric this run logs" + (f" — {hint}" if hint else "")
            + f" (logged: {', '.join(logged)})")


class StageMetrics:
    """The loss and the spec's metrics for one stage, named `<stage>/loss` and `<stage>/<metric>`.

    `names` are the scalar values a stage logs (what callbacks may monitor); `tables` the others:
    per-class values (`average: none`) and confusion matrices, which `compute` gives as lists.
    """

    def __init__(self, stage: str, metrics: dict[str, Metric], empty_batch: EmptyBatch | None = None):
        self.stage = stage
        self.loss = MeanMetric()
        self.metrics = metrics
        self.names = stage_metric_names(stage, [name for name, metric in metrics.items() if metric.scalar])
        self.tables = [f"{stage}/{name}" for name, metric in metrics.items() if not metric.scalar]
        self.empty_batch = empty_batch

    def reset(self, device: torch.device) -> None:
        """Zero every state on `device`. With `empty_batch` (runs of several processes), each metric then
        sees a batch of no samples, which sizes its states: a process whose share of a split has no
        batch still adds states of the right shape to the all-reduce."""
        self.loss.reset(device)
        for metric in self.metrics.values():
            metric.reset(device)
        if self.empty_batch is not None:
            outputs, targets = self.empty_batch(device)
            for index, (name, metric) in enumerate(self.metrics.items()):
                try:
                    metric.update(outputs, targets)
                except ValueError as exc:
                    raise MetricInputError(index, f"metric '{name}': {exc}") from None

    def update(self, loss: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one batch: its mean loss (weighted by its size) and the metrics' counts."""
        self.loss.update(loss, batch_size(targets))
        for index, (name, metric) in enumerate(self.metrics.items()):
            try:
                metric.update(outputs, targets)
            except ValueError as exc:
                raise MetricInputError(index, f"metric '{name}': {exc}") from None

    def compute(self) -> dict[str, float | list]:
        """Every value, read with one host sync: floats, and nested lists for the non-scalar metrics."""
        values = [self.loss.compute().float()] + [metric.compute().float() for metric in self.metrics.values()]
        device = values[0].device
        flat = torch.cat([value.reshape(-1).to(device) for value in values]).tolist()
        out: dict[str, float | list] = {}
        start = 0
        for name, value in zip([f"{self.stage}/loss"] + [f"{self.stage}/{n}" for n in self.metrics], values):
            size = value.numel()
            out[name] = flat[start] if value.ndim == 0 else _nested(flat[start:start + size], tuple(value.shape))
            start += size
        return out

    def states(self) -> list[torch.Tensor]:
        return self.loss.states() + [s for metric in self.metrics.values() for s in metric.states()]

    def state_dict(self) -> dict[str, dict]:
        """This process's sums so far (a partial epoch's, in a mid-epoch checkpoint)."""
        return {"loss": self.loss.state_dict(), **{name: metric.state_dict() for name, metric in self.metrics.items()}}

    def load_state_dict(self, state: dict[str, dict], device: torch.device) -> None:
        self.loss.load_state_dict(state["loss"], device)
        for name, metric in self.metrics.items():
            metric.load_state_dict(state[name], device)


def _nested(flat: list[float], shape: tuple[int, ...]) -> list:
    """A flat list as nested lists of `shape`."""
    if len(shape) == 1:
        return flat
    step = len(flat) // shape[0]
    return [_nested(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]
