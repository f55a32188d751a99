"""The CPU: `devices: N` is N processes (DDP over gloo), as in Lightning."""

from __future__ import annotations

import torch

from declarative.training.accelerators.base import Accelerator
from declarative.training.errors import MisconfigurationError

__all__ = ["CPUAccelerator"]


class CPUAccelerator(Accelerator):
    """The host CPU. `devices` counts processes: `auto` is 1, N starts N (each with its share of the cores)."""

    name = "cpu"
    device_type = "cpu"
    backend = "gloo"

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def device_count() -> int:
        return 1

    @classmethod
    def parse_devices(cls, devices: int | str | list[int]) -> list[int]:
        if devices == "auto":
            return [0]
        if isinstance(devices, list) or int(devices) < 1:
            raise MisconfigurationError(f"devices: {devices} — on the CPU, devices is a number of processes "
                                        "(an integer >= 1, or auto for one)", ("trainer", "devices"))
        return list(range(int(devices)))

    def device(self, index: int) -> torch.device:
        return torch.device("cpu")
