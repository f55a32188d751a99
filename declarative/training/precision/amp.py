"""16-mixed / bf16-mixed: float32 weights, forward under torch.autocast (torch.amp)."""

from __future__ import annotations

from typing import ContextManager

import torch

from declarative.training.precision.base import PrecisionPlugin

__all__ = ["MixedPrecision"]


class MixedPrecision(PrecisionPlugin):
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
