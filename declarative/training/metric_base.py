"""The Metric base class: state tensors that add up over batches on the device."""

from __future__ import annotations

import torch

__all__ = ["Metric", "MeanMetric", "float_state_dtype"]


class Metric:
    """Base class: state tensors that add up over batches; `compute` divides them on the device.

    A subclass keeps only sums (counts, sums of squares, a confusion matrix), so its value is exact
    over every sample seen, not a mean of batch means, and the states of several processes add up
    with `torch.distributed.all_reduce`. `update` reads shapes and dtypes only, never values, so
    it never waits for the device.
    """

    # Tasks whose outputs this metric reads (see declarative/training/tasks.py).
    tasks: tuple[str, ...] = ("multiclass", "binary", "multilabel", "regression", "segmentation")

    def __init__(self) -> None:
        self.reset(torch.device("cpu"))

    @property
    def scalar(self) -> bool:
        """Whether `compute` gives one number (else a per-class vector or a matrix)."""
        return True

    def reset(self, device: torch.device) -> None:
        """Zero the state on `device`."""
        raise NotImplementedError

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one batch; must not sync with the host."""
        raise NotImplementedError

    def compute(self) -> torch.Tensor:
        """The value so far as a tensor on the device (0-dim when `scalar`; NaN before any sample)."""
        raise NotImplementedError

    def states(self) -> list[torch.Tensor]:
        """The tensors to sum across processes before `compute`."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The sums so far (every tensor attribute), on the CPU: a checkpoint's partial epoch."""
        return {name: value.detach().cpu() for name, value in vars(self).items() if isinstance(value, torch.Tensor)}

    def load_state_dict(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        """Continue from the sums `state_dict` returned."""
        for name, value in state.items():
            setattr(self, name, value.to(device))


class MeanMetric(Metric):
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


def float_state_dtype(device: torch.device) -> torch.dtype:
    """float64 for sums of squares where the device has it (MPS does not)."""
    return torch.float32 if device.type == "mps" else torch.float64
