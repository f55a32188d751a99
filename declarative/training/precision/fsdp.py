"""Mixed precision under FSDP: the sharding itself casts (FSDP2's MixedPrecisionPolicy), no autocast."""

from __future__ import annotations

import torch

from declarative.training.precision.amp import MixedPrecision

__all__ = ["FSDPPrecision"]


class FSDPPrecision(MixedPrecision):
    """16-mixed / bf16-mixed with FSDP: parameters are gathered in the low dtype for forward and backward,
    gradients reduced in float32, and the sharded float32 parameters updated (torch's MixedPrecisionPolicy).

    `policy` is what the FSDP strategy passes to `fully_shard`; autocast still wraps forward, so
    operations that need float32 (softmax, losses) get it.
    """

    @property
    def policy(self) -> tuple[torch.dtype, torch.dtype]:
        """(param_dtype, reduce_dtype) of torch's MixedPrecisionPolicy."""
        return self.dtype, torch.float32
