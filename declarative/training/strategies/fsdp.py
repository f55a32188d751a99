"""Fully sharded data parallel (torch's FSDP2, `fully_shard`): parameters, gradients and optimizer
state split over the processes, gathered layer by layer for each forward and backward pass."""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Iterator

import torch
from torch import nn

from declarative.training.errors import MisconfigurationError
from declarative.training.strategies.ddp import ParallelStrategy

__all__ = ["FSDPStrategy"]


def _fsdp():
    try:
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard
    except ImportError:  # torch < 2.6 keeps FSDP2 under _composable
        from torch.distributed._composable.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard
    return fully_shard, MixedPrecisionPolicy, CPUOffloadPolicy


class FSDPStrategy(ParallelStrategy):
    """torch's FSDP2 (`torch.distributed.fsdp.fully_shard`), with its own arguments.

    Args:
        reshard_after_forward: free the gathered parameters after each forward pass (less memory, one
            more all-gather in backward). Default: True
        cpu_offload: keep the sharded parameters, gradients and optimizer state in CPU memory. Default: False
        auto_wrap: layer class names (e.g. TransformerEncoderLayer) each sharded as a unit of its own, so
            only one of them is whole at a time; the model itself is always one unit. Default: none
    """

    name = "fsdp"

    def __init__(self, reshard_after_forward: bool = True, cpu_offload: bool = False,
                 auto_wrap: list[str] | None = None):
        super().__init__()
        self.reshard_after_forward = reshard_after_forward
        self.cpu_offload = cpu_offload
        self.auto_wrap = list(auto_wrap or [])
        self.mixed_precision: tuple[torch.dtype, torch.dtype] | None = None  # (param, reduce) dtypes, from the precision

    def setup_module(self, module: nn.Module) -> nn.Module:
        fully_shard, MixedPrecisionPolicy, CPUOffloadPolicy = _fsdp()
        module = self.convert_sync_batchnorm(module)
        module = module.to(self.root_device)
        kwargs: dict[str, Any] = {"reshard_after_forward": self.reshard_after_forward}
        if self.mixed_precision is not None:
            param_dtype, reduce_dtype = self.mixed_precision
            kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
        if self.cpu_offload:
            kwargs["offload_policy"] = CPUOffloadPolicy()
        wrapped = {type(m).__name__ for m in module.modules()}
        unknown = [name for name in self.auto_wrap if name not in wrapped]
        if unknown:
            raise MisconfigurationError(f"fsdp auto_wrap names {', '.join(unknown)}, which the model does not have "
                                        f"(its layer types: {', '.join(sorted(wrapped))})", ("trainer", "strategy"))
        for submodule in list(module.modules())[1:]:
            if type(submodule).__name__ in self.auto_wrap:
                fully_shard(submodule, **kwargs)
        fully_shard(module, **kwargs)
        return module

    def inference_context(self) -> ContextManager:
        # FSDP gathers parameters into buffers it reuses in training: inference tensors there would
        # refuse the next training step's in-place updates.
        return torch.no_grad()

    def no_backward_sync(self, module: nn.Module, enabled: bool) -> ContextManager:
        if not enabled or not hasattr(module, "set_requires_gradient_sync"):
            return contextlib.nullcontext()
        return _gradient_sync_off(module)

    def model_state_dict(self, module: nn.Module) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def optimizer_state_dict(self, module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(module, optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_model_state_dict(self, module: nn.Module, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(module, state, options=StateDictOptions(full_state_dict=True))

    def load_optimizer_state_dict(self, module: nn.Module, optimizer: torch.optim.Optimizer,
                                  state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        if not state.get("state"):  # a stateless optimizer (SGD without momentum): only its hyperparameters,
            for group, saved in zip(optimizer.param_groups, state["param_groups"]):  # which torch's loader cannot
                group.update({key: value for key, value in saved.items() if key != "params"})  # place on a device
            return
        set_optimizer_state_dict(module, optimizer, state, options=StateDictOptions(full_state_dict=True))


@contextlib.contextmanager
def _gradient_sync_off(module: nn.Module) -> Iterator[None]:
    module.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        module.set_requires_gradient_sync(True)
