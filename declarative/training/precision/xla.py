"""Precision on XLA devices: 32-true, or bf16-mixed through autocast on the `xla` device type."""

from __future__ import annotations

from typing import ContextManager

import torch

from declarative.training.precision.base import PrecisionPlugin

__all__ = ["XLAPrecision"]


class XLAPrecision(PrecisionPlugin):
    """bf16-mixed on TPUs: float32 weights, matmuls and convolutions in bfloat16 under torch.autocast('xla').

    TPUs compute in bfloat16 natively and need no loss scaling.
    """

    name = "bf16-mixed"

    def forward_context(self) -> ContextManager:
        return torch.autocast("xla", dtype=torch.bfloat16)
