"""Metrics accumulated on the device over a run's batches and read once, at the end.

Each metric keeps a few tensors that add up across batches (a count of correct predictions and
a count of samples, say), so its value is exact over all samples, not a mean of batch means.
Updating never leaves the device; `StageMetrics.compute` reads every value with one host sync.
The same sums add up across processes (`torch.distributed.all_reduce` on `states()`), which is
all a distributed run will need.
"""

from __future__ import annotations

import torch

from declarative.errors import did_you_mean
from declarative.registry import Registry

__all__ = ["METRICS", "Metric", "Mean", "Accuracy", "StageMetrics", "MetricInputError", "stage_metric_names",
           "unlogged_metric"]

METRICS = Registry("metric", list_command="dtrain layers --kind metric")


class MetricInputError(ValueError):
    """Outputs or targets a metric cannot read; `index` is the metric's place in the spec's list."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


class Metric:
    """Base class: state tensors that add up over batches; `compute` divides them on the device."""

    def __init__(self) -> None:
        self.reset(torch.device("cpu"))

    def reset(self, device: torch.device) -> None:
        """Zero the state on `device`."""
        raise NotImplementedError

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one batch; must not sync with the host."""
        raise NotImplementedError

    def compute(self) -> torch.Tensor:
        """The value so far as a 0-dim tensor on the device (NaN before any sample)."""
        raise NotImplementedError

    def states(self) -> list[torch.Tensor]:
        """The tensors to sum across processes before `compute`."""
        raise NotImplementedError


class Mean(Metric):
    """Sample-weighted mean of a per-batch value (the loss): sum(value * n) / sum(n)."""

    def reset(self, device: torch.device) -> None:
        self.total = torch.zeros((), dtype=torch.float32, device=device)
        self.count = torch.zeros((), dtype=torch.float32, device=device)

    def update(self, value: torch.Tensor, weight: int = 1) -> None:  # type: ignore[override]
        self.total.add_(value.detach().float(), alpha=weight)
        self.count.add_(weight)

    def compute(self) -> torch.Tensor:
        return self.total / self.count

    def states(self) -> list[torch.Tensor]:
        return [self.total, self.count]


class Accuracy(Metric):
    """Multiclass accuracy: the fraction of samples whose target is among the top-k class scores.

    Args:
        top_k: count a sample as correct when its target is among the k highest scores. Default: 1

    Shape:
        - outputs: ``(N, C)`` or ``(N, C, d1, ...)`` class scores (logits or probabilities)
        - targets: ``(N)`` or ``(N, d1, ...)`` class indices, or class probabilities shaped as outputs
    """

    def __init__(self, top_k: int = 1):
        if top_k < 1:
            raise ValueError(f"top_k must be a positive integer, but got top_k={top_k}")
        self.top_k = top_k
        super().__init__()

    def reset(self, device: torch.device) -> None:
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.total = torch.zeros((), dtype=torch.int64, device=device)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        if targets.is_floating_point() and targets.shape == outputs.shape:
            targets = targets.argmax(dim=1)  # class probabilities (e.g. label smoothing, mixup)
        self._check(outputs, targets)
        if self.top_k == 1:
            hits = outputs.argmax(dim=1) == targets
        else:
            hits = (outputs.topk(self.top_k, dim=1).indices == targets.unsqueeze(1)).any(dim=1)
        self.correct += hits.sum()
        self.total += targets.numel()

    def _check(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Shapes and dtypes only: known on the host, so checking costs no sync."""
        if outputs.ndim < 2:
            raise ValueError(f"accuracy needs class scores of shape (N, C, ...), but the model's output has shape "
                             f"{tuple(outputs.shape)}; for a single score per sample use a 2-class output")
        expected = outputs.shape[:1] + outputs.shape[2:]
        if targets.shape != expected or targets.is_floating_point() or targets.is_complex():
            raise ValueError(f"accuracy needs integer class targets of shape {tuple(expected)} for outputs of shape "
                             f"{tuple(outputs.shape)}, but got {targets.dtype} targets of shape {tuple(targets.shape)}")
        if self.top_k > outputs.shape[1]:
            raise ValueError(f"top_k={self.top_k} is more than the {outputs.shape[1]} classes the model outputs")

    def compute(self) -> torch.Tensor:
        return self.correct.float() / self.total.float()

    def states(self) -> list[torch.Tensor]:
        return [self.correct, self.total]


METRICS.add_class(Accuracy, name="accuracy", constraints={"top_k": {"minimum": 1}})


def batch_size(targets: object) -> int:
    """Samples in a batch, read from the targets' shape (no sync)."""
    if isinstance(targets, torch.Tensor):
        return targets.shape[0] if targets.ndim else 1
    return len(targets)  # type: ignore[arg-type]


def stage_metric_names(stage: str, metric_names: list[str]) -> list[str]:
    """What a stage logs: `<stage>/loss`, then `<stage>/<metric>` for each of the spec's metrics."""
    return [f"{stage}/loss"] + [f"{stage}/{name}" for name in metric_names]


def unlogged_metric(name: str, logged: list[str], has_validation: bool, what: str) -> str | None:
    """Why `name` (a monitor) is no metric the run logs, or None when it is one."""
    if name in logged:
        return None
    if name.startswith("val/") and not has_validation:
        return (f"{what} '{name}' needs validation, but this run has none: add data.val "
                "(e.g. val: {fraction: 0.1}) and keep trainer.limit_val_batches above 0")
    hint = did_you_mean(name, logged)
    return (f"{what} '{name}' is not a metric this run logs" + (f" — {hint}" if hint else "")
            + f" (logged: {', '.join(logged)})")


class StageMetrics:
    """The loss and the spec's metrics for one stage, named `<stage>/loss` and `<stage>/<metric>`."""

    def __init__(self, stage: str, metrics: dict[str, Metric]):
        self.stage = stage
        self.loss = Mean()
        self.metrics = metrics
        self.names = stage_metric_names(stage, list(metrics))

    def reset(self, device: torch.device) -> None:
        self.loss.reset(device)
        for metric in self.metrics.values():
            metric.reset(device)

    def update(self, loss: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one batch: its mean loss (weighted by its size) and the metrics' counts."""
        self.loss.update(loss, batch_size(targets))
        for index, (name, metric) in enumerate(self.metrics.items()):
            try:
                metric.update(outputs, targets)
            except ValueError as exc:
                raise MetricInputError(index, f"metric '{name}': {exc}") from None

    def compute(self) -> dict[str, float]:
        """Every value, read with one host sync."""
        values = [self.loss.compute()] + [metric.compute().float() for metric in self.metrics.values()]
        return dict(zip(self.names, torch.stack(values).tolist()))

    def states(self) -> list[torch.Tensor]:
        return self.loss.states() + [s for metric in self.metrics.values() for s in metric.states()]
