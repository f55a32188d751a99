"""64-true: float64 weights, inputs and math."""

from __future__ import annotations

from typing import Any

import torch

from declarative.training.precision.base import PrecisionPlugin, floats_to

__all__ = ["DoublePrecision"]


class DoublePrecision(PrecisionPlugin):
    """64-true: float64 weights, inputs and math."""

    name = "64-true"

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.double()

    def convert_input(self, data: Any) -> Any:
        return floats_to(data, torch.float64)
