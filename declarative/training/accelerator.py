"""Which device a run uses: Lightning's `accelerator` and `devices`, resolved once."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from declarative.spec.config import Spec

__all__ = ["Accelerator", "select_accelerator"]


@dataclass(frozen=True)
class Accelerator:
    """The device a run trains on (one device; several need a distributed strategy)."""

    name: str  # cpu / cuda / mps
    device: torch.device


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def _mps_available() -> bool:
    return torch.backends.mps.is_available()


def _accelerator_name(wanted: str) -> str | None:
    """The accelerator to use for `wanted`, or None when this machine has none of that kind."""
    if wanted == "auto":
        return "cuda" if _cuda_available() else "mps" if _mps_available() else "cpu"
    if wanted == "gpu":  # Lightning's `gpu`: CUDA, or Apple's MPS
        return "cuda" if _cuda_available() else "mps" if _mps_available() else None
    if wanted == "cuda":
        return "cuda" if _cuda_available() else None
    if wanted == "mps":
        return "mps" if _mps_available() else None
    return "cpu"


def select_accelerator(spec: Spec) -> Accelerator:
    """Resolve `trainer.accelerator` and `trainer.devices`; a located error when they cannot be met."""
    wanted = spec.trainer.accelerator
    name = _accelerator_name(wanted)
    if name is None:
        raise spec.error(("trainer", "accelerator"),
                         f"accelerator: {wanted} needs a {'GPU' if wanted == 'gpu' else wanted.upper()} device, "
                         "but this machine has none — use accelerator: auto (or cpu)")
    devices = spec.trainer.devices
    if devices != "auto" and devices != 1:
        raise spec.error(("trainer", "devices"),
                         f"devices: {devices} needs a distributed strategy, which dtrain does not have yet — use 1")
    device = torch.device("cuda", torch.cuda.current_device()) if name == "cuda" else torch.device(name)
    return Accelerator(name, device)
