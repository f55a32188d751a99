"""DistributedDataParallel: a copy of the model per process, gradients averaged in the backward pass."""

from __future__ import annotations

import datetime
import os
from typing import Any, ContextManager

import torch
import torch.distributed as dist
from torch import nn

from declarative.training.strategies.base import Strategy

__all__ = ["DDPStrategy", "ParallelStrategy"]

# How long a collective may wait for the other processes before the process group gives up. A rank
# that dies is noticed by the launcher (torch's elastic agent), which ends the others at once; this
# bounds the wait only where no agent watches (srun without torchrun).
PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=30)


class ParallelStrategy(Strategy):
    """What every multi-process strategy shares: the process group and its collectives."""

    distributed = True

    def setup_environment(self) -> None:
        super().setup_environment()
        if dist.is_initialized():
            return
        assert self.environment is not None, "a multi-process strategy needs its launcher's environment"
        self.environment.export()
        backend = self.accelerator.backend if self.accelerator is not None else "gloo"
        options: dict[str, Any] = {"device_id": self.root_device} if backend == "nccl" else {}
        dist.init_process_group(backend, init_method="env://", world_size=self.world_size, rank=self.global_rank,
                                timeout=PROCESS_GROUP_TIMEOUT, **options)

    def teardown(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    def all_reduce(self, tensors: list[torch.Tensor]) -> None:
        for tensor in tensors:
            dist.all_reduce(tensor)

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        holder = [obj]
        dist.broadcast_object_list(holder, src=src)
        return holder[0]

    def barrier(self) -> None:
        dist.barrier()

    def reduce_any(self, flag: bool) -> bool:
        tensor = torch.tensor(float(flag), device=self._collective_device())
        dist.all_reduce(tensor)
        return bool(tensor.item() > 0)

    def _collective_device(self) -> torch.device:
        return self.root_device if dist.get_backend() == "nccl" else torch.device("cpu")


class DDPStrategy(ParallelStrategy):
    """torch's DistributedDataParallel, one process per device, with its own arguments.

    Args:
        find_unused_parameters: look for parameters the forward pass did not use (slower; for models
            with branches some batches skip). Default: False
        static_graph: the graph is the same every step (lets DDP skip work; needed for some reentrant
            checkpointing). Default: False
        gradient_as_bucket_view: gradients are views into DDP's buckets (saves memory). Default: False
        bucket_cap_mb: size of the gradient buckets all-reduced together, in MB. Default: torch's (25)
        broadcast_buffers: send rank 0's buffers (BatchNorm statistics) to the others every forward. Default: True
    """

    name = "ddp"

    def __init__(self, find_unused_parameters: bool = False, static_graph: bool = False,
                 gradient_as_bucket_view: bool = False, bucket_cap_mb: float | None = None,
                 broadcast_buffers: bool = True):
        super().__init__()
        self.ddp_kwargs: dict[str, Any] = {"find_unused_parameters": find_unused_parameters,
                                           "static_graph": static_graph,
                                           "gradient_as_bucket_view": gradient_as_bucket_view}
        if bucket_cap_mb is not None:
            self.ddp_kwargs["bucket_cap_mb"] = bucket_cap_mb
        if not broadcast_buffers:  # passed only when it differs from torch's default (newer torch renames it)
            self.ddp_kwargs["broadcast_buffers"] = False

    def setup_module(self, module: nn.Module) -> nn.Module:
        module = self.convert_sync_batchnorm(module)
        module = module.to(self.root_device)
        device_ids = [self.root_device.index] if self.root_device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids, **self.ddp_kwargs)

    def unwrap(self, module: nn.Module) -> nn.Module:
        return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module

    def no_backward_sync(self, module: nn.Module, enabled: bool) -> ContextManager:
        if enabled and isinstance(module, nn.parallel.DistributedDataParallel):
            return module.no_sync()
        return super().no_backward_sync(module, enabled)


os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")  # a failed NCCL collective ends the process
