"""Precision plugins a run can name (`trainer.precision`), one file per kind, as Lightning Fabric's.

    32-true     float32 (32 is the same)               base.py
    64-true     float64 (64 is the same)               double.py
    16-mixed    autocast float16 + GradScaler (16)     amp.py   (fsdp.py under FSDP, as its policy)
    bf16-mixed  autocast bfloat16 (bf16)               amp.py   (fsdp.py under FSDP, xla.py on TPUs)
    16-true     float16 weights and math               half.py
    bf16-true   bfloat16 weights and math              half.py

Lightning's spellings all work: `precision: 16` is 16-mixed and `"bf16"` bf16-mixed, as in Lightning 2.
"""

from __future__ import annotations

import torch

from declarative.registry import Entry, Registry
from declarative.training.errors import MisconfigurationError
from declarative.training.precision.amp import MixedPrecision
from declarative.training.precision.base import FullPrecision, PrecisionPlugin, floats_to
from declarative.training.precision.double import DoublePrecision
from declarative.training.precision.fsdp import FSDPPrecision
from declarative.training.precision.half import HalfPrecision
from declarative.training.precision.xla import XLAPrecision

__all__ = ["PRECISIONS", "PRECISION_ALIASES", "PRECISION_CHOICES", "PrecisionPlugin", "FullPrecision", "DoublePrecision", "MixedPrecision",
           "FSDPPrecision", "HalfPrecision", "XLAPrecision", "floats_to", "select_precision"]

PRECISIONS = Registry("precision", list_command="dtrain layers --kind precision")
for _name, _doc in (("32-true", "float32 weights and math"), ("64-true", "float64 weights, inputs and math"),
                    ("16-mixed", "float32 weights, forward under autocast float16, with loss scaling"),
                    ("bf16-mixed", "float32 weights, forward under autocast bfloat16"),
                    ("16-true", "float16 weights, inputs and math"), ("bf16-true", "bfloat16 weights, inputs and math")):
    PRECISIONS.add(Entry(_name, PrecisionPlugin, {}, _doc))
PRECISION_ALIASES = {"32": "32-true", "64": "64-true", "16": "16-mixed", "bf16": "bf16-mixed"}
# What `trainer.precision` takes: each name, then Lightning's short spellings of it (YAML reads 16 as a number).
PRECISION_CHOICES = ["32-true", "32", 32, "64-true", "64", 64, "16-mixed", "16", 16, "bf16-mixed", "bf16", "16-true",
                     "bf16-true"]


def select_precision(name: str, device_type: str, strategy_name: str = "single_device") -> PrecisionPlugin:
    """The plugin for `name` on this device and strategy; a MisconfigurationError when they cannot run it."""
    name = PRECISION_ALIASES.get(str(name), str(name))
    where = ("trainer", "precision")
    if name not in PRECISIONS:
        raise MisconfigurationError(f"precision must be one of {', '.join(PRECISIONS.names())}, but got {name!r}",
                                    where)
    if device_type == "xla":
        if name == "32-true":
            return FullPrecision()
        if name == "bf16-mixed":
            return XLAPrecision()
        raise MisconfigurationError(f"precision: {name} is not for TPUs — use bf16-mixed or 32-true", where)
    if name == "32-true":
        return FullPrecision()
    if name in ("16-true", "bf16-true"):
        dtype = torch.bfloat16 if name == "bf16-true" else torch.float16
        if dtype == torch.bfloat16 and device_type == "cuda" and not torch.cuda.is_bf16_supported():
            raise MisconfigurationError(f"precision: {name} needs a GPU with bfloat16 support, which this one lacks",
                                        where)
        return HalfPrecision(dtype)
    if name == "64-true":
        if device_type == "mps":
            raise MisconfigurationError("precision: 64-true is not supported on MPS (no float64) — use 32-true, or "
                                        "accelerator: cpu", where)
        if strategy_name == "fsdp":
            raise MisconfigurationError("precision: 64-true with strategy fsdp is not supported — use ddp", where)
        return DoublePrecision()
    dtype = torch.bfloat16 if name == "bf16-mixed" else torch.float16
    if dtype == torch.bfloat16 and device_type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MisconfigurationError("precision: bf16-mixed needs a GPU with bfloat16 support, which this one lacks "
                                    "— use 16-mixed", where)
    if strategy_name == "fsdp":
        return FSDPPrecision(dtype, device_type)
    return MixedPrecision(dtype, device_type)
