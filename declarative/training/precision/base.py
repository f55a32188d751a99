"""The precision plugin base class: 32-true, where every hook is a no-op."""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar, ContextManager

import torch

__all__ = ["PrecisionPlugin", "FullPrecision", "floats_to"]


class PrecisionPlugin:
    """How numbers are kept and computed (as Lightning Fabric's precision plugins).

    The trainer converts the model and each batch, runs forward and the loss in `forward_context()`,
    and leaves backward and the optimizer step to the plugin, which is where a GradScaler (16-mixed)
    scales the loss and skips steps with inf gradients.
    """

    name: ClassVar[str] = ""

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module in this precision's dtype (in place)."""
        return module

    def convert_input(self, data: Any) -> Any:
        """A batch in this precision's dtype."""
        return data

    def forward_context(self) -> ContextManager:
        """The context forward and loss run in."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def unscale_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring gradients to their true scale (before clipping them)."""

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.step()

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""


class FullPrecision(PrecisionPlugin):
    """32-true: float32 weights and math."""

    name = "32-true"


def floats_to(data: Any, dtype: torch.dtype) -> Any:
    """Floating-point tensors in a (nested) batch cast to `dtype`; everything else unchanged."""
    if isinstance(data, torch.Tensor):
        return data.to(dtype) if data.is_floating_point() else data
    if isinstance(data, (list, tuple)):
        return type(data)(floats_to(d, dtype) for d in data)
    if isinstance(data, dict):
        return {k: floats_to(v, dtype) for k, v in data.items()}
    return data
