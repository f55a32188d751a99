"""16-true / bf16-true: the weights, inputs and math all in float16 or bfloat16 (half the memory, no float32 copy)."""

from __future__ import annotations

from typing import Any

import torch

from declarative.training.precision.base import PrecisionPlugin, floats_to

__all__ = ["HalfPrecision"]


class HalfPrecision(PrecisionPlugin):
    """16-true / bf16-true: the model and the batches' floating-point tensors in one half-precision dtype.

    No loss scaling: with float16 weights small updates underflow, which is why Lightning
    recommends the mixed variants for training and these for inference or bfloat16 fine-tuning.
    """

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self.name = "bf16-true" if dtype == torch.bfloat16 else "16-true"

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.to(self.dtype)

    def convert_input(self, data: Any) -> Any:
        return floats_to(data, self.dtype)
