"""NVIDIA GPUs through CUDA; several processes talk over NCCL."""

from __future__ import annotations

import torch

from declarative.training.accelerators.base import Accelerator

__all__ = ["CUDAAccelerator"]


class CUDAAccelerator(Accelerator):
    """CUDA GPUs (what Lightning's `gpu` means on a machine with NVIDIA GPUs)."""

    name = "cuda"
    device_type = "cuda"
    backend = "nccl"

    @staticmethod
    def is_available() -> bool:
        return torch.cuda.is_available()

    @staticmethod
    def device_count() -> int:
        return torch.cuda.device_count()

    def setup_device(self, device: torch.device) -> None:
        torch.cuda.set_device(device)
