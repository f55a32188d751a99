"""Regression metrics from sums over batches (errors, squares, counts), kept on the device.

Names and meanings follow torchmetrics: `mse` and `mae` average over every target value;
`r2` is computed per output column and averaged uniformly (torchmetrics' `uniform_average`).
"""

from __future__ import annotations

import math

import torch

from declarative.training.metric_base import Metric, float_state_dtype
from declarative.training.tasks import adapt_to_task

__all__ = ["MeanSquaredError", "MeanAbsoluteError", "R2Score"]


class _RegressionMetric(Metric):
    """Base class: outputs and targets as `(N, D)` columns, in a float64 state where the device has it."""

    tasks = ("regression",)

    def __init__(self, task: str = "regression"):
        if task != "regression":
            raise ValueError(f"{type(self).__name__} is for regression outputs, but the task is {task}")
        self.task = task
        super().__init__()

    def reset(self, device: torch.device) -> None:
        self.count = torch.zeros((), dtype=torch.int64, device=device)
        self._sums: dict[str, torch.Tensor] | None = None  # sized at the first batch, one entry per column

    def _columns(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs, targets = adapt_to_task(self.task, outputs, targets)
        dtype = float_state_dtype(outputs.device)
        columns = 1 if outputs.ndim == 1 else math.prod(outputs.shape[1:])  # a batch of no samples too
        return outputs.reshape(-1, columns).to(dtype), targets.reshape(-1, columns).to(dtype)

    def _add(self, **values: torch.Tensor) -> None:
        if self._sums is None:
            self._sums = {name: torch.zeros_like(value) for name, value in values.items()}
        elif any(self._sums[name].shape != value.shape for name, value in values.items()):
            raise ValueError("the model's outputs change shape between batches")
        for name, value in values.items():
            self._sums[name] += value

    def states(self) -> list[torch.Tensor]:
        return [self.count] + (list(self._sums.values()) if self._sums is not None else [])


class MeanSquaredError(_RegressionMetric):
    """Mean squared error over every target value.

    Shape:
        - outputs: ``(N, *)``; ``(N, 1)`` also meets ``(N)`` targets
        - targets: ``(N, *)``, numbers of any dtype
    """

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        outputs, targets = self._columns(outputs, targets)
        self._add(squared=(outputs - targets).square().sum())
        self.count += targets.numel()

    def compute(self) -> torch.Tensor:
        if self._sums is None:
            return torch.tensor(float("nan"))
        return (self._sums["squared"] / self.count).float()


class MeanAbsoluteError(_RegressionMetric):
    """Mean absolute error over every target value.

    Shape:
        - outputs: ``(N, *)``; ``(N, 1)`` also meets ``(N)`` targets
        - targets: ``(N, *)``, numbers of any dtype
    """

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        outputs, targets = self._columns(outputs, targets)
        self._add(absolute=(outputs - targets).abs().sum())
        self.count += targets.numel()

    def compute(self) -> torch.Tensor:
        if self._sums is None:
            return torch.tensor(float("nan"))
        return (self._sums["absolute"] / self.count).float()


class R2Score(_RegressionMetric):
    """Coefficient of determination, 1 - SS_res / SS_tot, per output column, then averaged.

    Exact over the epoch from sums: SS_tot = sum(y²) - (sum y)² / n.

    Shape:
        - outputs: ``(N)`` or ``(N, D)``; ``(N, 1)`` also meets ``(N)`` targets
        - targets: as outputs
    """

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        outputs, targets = self._columns(outputs, targets)
        self._add(residual=(outputs - targets).square().sum(dim=0), target=targets.sum(dim=0),
                  target_squared=targets.square().sum(dim=0))
        self.count += targets.shape[0]

    def compute(self) -> torch.Tensor:
        if self._sums is None:
            return torch.tensor(float("nan"))
        n = self.count.to(self._sums["target"].dtype)
        total = self._sums["target_squared"] - self._sums["target"].square() / n
        return (1 - self._sums["residual"] / total).mean().float()
