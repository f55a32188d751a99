"""Apple silicon GPUs through Metal (MPS): one device, no multi-process backend."""

from __future__ import annotations

import torch

from declarative.training.accelerators.base import Accelerator

__all__ = ["MPSAccelerator"]


class MPSAccelerator(Accelerator):
    """Apple's MPS device (one per machine)."""

    name = "mps"
    device_type = "mps"

    @staticmethod
    def is_available() -> bool:
        return torch.backends.mps.is_available()

    @staticmethod
    def device_count() -> int:
        return 1 if torch.backends.mps.is_available() else 0

    def device(self, index: int) -> torch.device:
        return torch.device("mps")
