"""Accelerators a run can name (`trainer.accelerator`), one file per kind, as Lightning Fabric's.

    auto   CUDA when there is a GPU, else MPS, else the CPU (never a TPU unless asked for)
    gpu    CUDA, or MPS on Apple silicon
    cpu, cuda, mps
    tpu    XLA devices through torch_xla
"""

from __future__ import annotations

from declarative.registry import Entry, Registry
from declarative.training.accelerators.base import Accelerator
from declarative.training.accelerators.cpu import CPUAccelerator
from declarative.training.accelerators.cuda import CUDAAccelerator
from declarative.training.accelerators.mps import MPSAccelerator
from declarative.training.accelerators.xla import XLAAccelerator
from declarative.training.errors import MisconfigurationError

__all__ = ["ACCELERATORS", "Accelerator", "CPUAccelerator", "CUDAAccelerator", "MPSAccelerator", "XLAAccelerator",
           "ACCELERATOR_CHOICES", "select_accelerator"]

ACCELERATORS = Registry("accelerator", list_command="dtrain layers --kind accelerator")
for _cls in (CPUAccelerator, CUDAAccelerator, MPSAccelerator, XLAAccelerator):
    ACCELERATORS.add(Entry(_cls.name, _cls, {}, (_cls.__doc__ or "").strip().splitlines()[0]))

# What `trainer.accelerator` takes: the registry's names, and Lightning's two that choose one of them.
ACCELERATOR_CHOICES = ["auto", "gpu", *(name for name in ("cpu", "cuda", "mps", "tpu"))]


def select_accelerator(wanted: str) -> Accelerator:
    """The accelerator `wanted` names on this machine; a MisconfigurationError when there is none of it."""
    if wanted == "auto":
        cls = next(c for c in (CUDAAccelerator, MPSAccelerator, CPUAccelerator) if c.is_available())
    elif wanted == "gpu":  # Lightning's `gpu`: CUDA, or Apple's MPS
        cls = next((c for c in (CUDAAccelerator, MPSAccelerator) if c.is_available()), None)
    else:
        cls = ACCELERATORS[wanted].factory
        cls = cls if cls.is_available() else None
    if cls is None:
        what = {"gpu": "GPU", "tpu": "TPU (torch_xla and an XLA device)"}.get(wanted, wanted.upper())
        raise MisconfigurationError(f"accelerator: {wanted} needs a {what}, but this machine has none — use "
                                    "accelerator: auto (or cpu)", ("trainer", "accelerator"))
    return cls()
