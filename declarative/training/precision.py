"""Numeric precision as Lightning names it: 32-true, 64-true, 16-mixed, bf16-mixed.

One small class per kind, as in Lightning Fabric: the trainer converts the model and the batches,
runs forward in `forward_context()`, and leaves backward and the optimizer step to the precision,
which is where a GradScaler (16-mixed) scales the loss and skips steps with inf gradients.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager

import torch

from declarative.spec.config import Spec
from declarative.training.accelerator import Accelerator

__all__ = ["Precision", "DoublePrecision", "MixedPrecision", "select_precision"]


class Precision:
    """32-true: float32 weights and math; every hook is a no-op."""

    name = "32-true"

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


def _floats_to(data: Any, dtype: torch.dtype) -> Any:
    """Floating-point tensors in a (nested) batch cast to `dtype`; everything else unchanged."""
    if isinstance(data, torch.Tensor):
        return data.to(dtype) if data.is_floating_point() else data
    if isinstance(data, (list, tuple)):
        return type(data)(_floats_to(d, dtype) for d in data)
    if isinstance(data, dict):
        return {k: _floats_to(v, dtype) for k, v in data.items()}
    return data


class DoublePrecision(Precision):
    """64-true: float64 weights, inputs and math."""

    name = "64-true"

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.double()

    def convert_input(self, data: Any) -> Any:
        return _floats_to(data, torch.float64)


class MixedPrecision(Precision):
    """16-mixed / bf16-mixed: float32 weights, forward under torch.autocast.

    float16 needs loss scaling (a torch.amp.GradScaler) so that small gradients do not flush to
    zero; bfloat16 has float32's range and needs none.
    """

    def __init__(self, dtype: torch.dtype, device_type: str):
        self.dtype = dtype
        self.device_type = device_type
        self.name = "bf16-mixed" if dtype == torch.bfloat16 else "16-mixed"
        self.scaler = torch.amp.GradScaler(device_type) if dtype == torch.float16 else None

    def forward_context(self) -> ContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def unscale_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler:
            self.scaler.unscale_(optimizer)

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)  # skipped when the scaled gradients hold inf/NaN
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler and state:
            self.scaler.load_state_dict(state)


_ALIASES = {"32": "32-true", "64": "64-true"}


def select_precision(spec: Spec, accelerator: Accelerator) -> Precision:
    """The precision `trainer.precision` names, checked against the device."""
    name = _ALIASES.get(str(spec.trainer.precision), str(spec.trainer.precision))
    device_type = accelerator.device.type
    if name == "32-true":
        return Precision()
    if name == "64-true":
        if device_type == "mps":
            raise spec.error(("trainer", "precision"), "precision: 64-true is not supported on MPS (no float64) — "
                                                       "use 32-true, or accelerator: cpu")
        return DoublePrecision()
    if name == "bf16-mixed":
        if device_type == "cuda" and not torch.cuda.is_bf16_supported():
            raise spec.error(("trainer", "precision"), "precision: bf16-mixed needs a GPU with bfloat16 support, "
                                                       "which this one lacks — use 16-mixed")
        return MixedPrecision(torch.bfloat16, device_type)
    if name == "16-mixed":
        return MixedPrecision(torch.float16, device_type)
    raise spec.error(("trainer", "precision"),
                     f"precision must be one of 32-true, 64-true, 16-mixed, bf16-mixed, but got {name!r}")
