"""TPUs (and other XLA devices) through torch_xla's PJRT runtime; an optional extra (`pip install -e '.[xla]'`)."""

from __future__ import annotations

import importlib.util
import os

import torch

from declarative.training.accelerators.base import Accelerator
from declarative.training.errors import MisconfigurationError

__all__ = ["XLAAccelerator", "xla_available"]


def xla_available() -> bool:
    """Whether torch_xla is installed (imported only when a run asks for it: its import is slow)."""
    return importlib.util.find_spec("torch_xla") is not None


class XLAAccelerator(Accelerator):
    """XLA devices: TPU cores on a TPU VM, or the host CPU with `PJRT_DEVICE=CPU` (for checks without a TPU).

    One process drives the devices this run uses: torch_xla keeps its own runtime, so a run with
    several XLA devices uses the `xla` strategy, which torch_xla launches.
    """

    name = "tpu"
    device_type = "xla"
    backend = "xla"

    @staticmethod
    def is_available() -> bool:
        if not xla_available():
            return False
        return bool(os.environ.get("PJRT_DEVICE") or os.environ.get("TPU_NAME") or os.path.exists("/dev/accel0")
                    or os.path.exists("/dev/vfio/0"))

    @staticmethod
    def device_count() -> int:
        if not xla_available():
            return 0
        import torch_xla.runtime as xr

        return xr.global_runtime_device_count()

    @classmethod
    def parse_devices(cls, devices: int | str | list[int]) -> list[int]:
        if not xla_available():
            raise MisconfigurationError("accelerator: tpu needs torch_xla, which is not installed — pip install "
                                        "'dtrain[xla]' on a TPU VM (or set PJRT_DEVICE=CPU to try it on the CPU)",
                                        ("trainer", "accelerator"))
        return super().parse_devices(devices)

    def device(self, index: int) -> torch.device:
        import torch_xla

        return torch_xla.device()
