"""The Strategy base class: how a model, its gradients and its state are spread over processes.

One process and one device here (`single_device`); ddp.py, fsdp.py and xla.py override what
differs. The Trainer calls only these methods, so the loop is the same for every strategy.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar, ContextManager

import torch
from torch import nn

from declarative.training.accelerators.base import Accelerator
from declarative.training.environments import ClusterEnvironment
from declarative.training.errors import MisconfigurationError

__all__ = ["Strategy"]

SYNC_BATCHNORM_DEVICES = ("cuda", "xpu", "hpu")  # the devices torch's SyncBatchNorm can sync on


class Strategy:
    """One process on one device: every collective is the identity."""

    name: ClassVar[str] = "single_device"
    distributed: ClassVar[bool] = False  # whether it runs as several processes

    def __init__(self) -> None:
        self.accelerator: Accelerator | None = None
        self.device_ids: list[int] = [0]
        self.num_nodes = 1
        self.environment: ClusterEnvironment | None = None
        self.sync_batchnorm = False

    def configure(self, accelerator: Accelerator, device_ids: list[int], num_nodes: int = 1,
                  environment: ClusterEnvironment | None = None, *, sync_batchnorm: bool = False) -> "Strategy":
        """Bind the strategy to the run's devices and (for several processes) its launcher's environment."""
        self.accelerator, self.device_ids, self.num_nodes = accelerator, list(device_ids), num_nodes
        self.environment, self.sync_batchnorm = environment, sync_batchnorm
        return self

    # -- who this process is ------------------------------------------------------------------

    @property
    def world_size(self) -> int:
        return self.environment.world_size if self.environment else 1

    @property
    def global_rank(self) -> int:
        return self.environment.global_rank if self.environment else 0

    @property
    def local_rank(self) -> int:
        return self.environment.local_rank if self.environment else 0

    @property
    def is_global_zero(self) -> bool:
        return self.global_rank == 0

    @property
    def root_device(self) -> torch.device:
        assert self.accelerator is not None, "configure the strategy first"
        return self.accelerator.device(self.device_ids[self.local_rank % len(self.device_ids)])

    # -- set-up and tear-down -----------------------------------------------------------------

    def setup_environment(self) -> None:
        """Make the device current (and, for several processes, join the process group)."""
        assert self.accelerator is not None, "configure the strategy first"
        self.accelerator.setup_device(self.root_device)

    def setup_module(self, module: nn.Module) -> nn.Module:
        """The module on the device, wrapped as the strategy trains it; build the optimizer from what this returns."""
        return module.to(self.root_device)

    def convert_sync_batchnorm(self, module: nn.Module) -> nn.Module:
        """With `sync_batchnorm`, every BatchNorm as a SyncBatchNorm (for the strategies of several processes).

        torch's SyncBatchNorm syncs only accelerator tensors: on the CPU it would fail at the first training
        step, so that is a located error before anything runs."""
        if not self.sync_batchnorm:
            return module
        has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
        if has_batchnorm and self.root_device.type not in SYNC_BATCHNORM_DEVICES:
            raise MisconfigurationError(f"sync_batchnorm needs GPUs: torch's SyncBatchNorm syncs only "
                                        f"{'/'.join(SYNC_BATCHNORM_DEVICES)} tensors, and this run trains on "
                                        f"{self.root_device.type} — leave it out (each process then keeps its own "
                                        "BatchNorm statistics)", ("trainer", "sync_batchnorm"))
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)

    def unwrap(self, module: nn.Module) -> nn.Module:
        """The user's module inside whatever wrapper `setup_module` added."""
        return module

    def teardown(self) -> None:
        """Leave the process group (when there is one)."""

    # -- the step -------------------------------------------------------------------------------

    def inference_context(self) -> ContextManager:
        """What evaluation runs under: inference_mode (no autograd bookkeeping at all)."""
        return torch.inference_mode()

    def no_backward_sync(self, module: nn.Module, enabled: bool) -> ContextManager:
        """While gradients accumulate (`enabled`), skip the gradient all-reduce of this backward pass."""
        return contextlib.nullcontext()

    def before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Called before each optimizer step, gradients unscaled (XLA all-reduces them here)."""

    def mark_step(self) -> None:
        """Called after each optimizer step and each evaluation batch (XLA cuts and runs its graph here)."""

    # -- collectives -------------------------------------------------------------------------

    def all_reduce(self, tensors: list[torch.Tensor]) -> None:
        """Sum each tensor over all processes, in place."""

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """`obj` as process `src` has it (picklable plain data)."""
        return obj

    def barrier(self) -> None:
        """Wait until every process gets here."""

    def reduce_any(self, flag: bool) -> bool:
        """True when `flag` is true on any process (so every process decides the same)."""
        return flag

    # -- state ----------------------------------------------------------------------------------

    def model_state_dict(self, module: nn.Module) -> dict[str, Any]:
        """The full state dict (every parameter whole), on the CPU-readable side of process 0."""
        return self.unwrap(module).state_dict()

    def optimizer_state_dict(self, module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        return optimizer.state_dict()

    def load_model_state_dict(self, module: nn.Module, state: dict[str, Any]) -> None:
        """Load a full state dict (as `model_state_dict` gives it) into the module."""
        self.unwrap(module).load_state_dict(state)

    def load_optimizer_state_dict(self, module: nn.Module, optimizer: torch.optim.Optimizer,
                                  state: dict[str, Any]) -> None:
        """Load an optimizer state (as `optimizer_state_dict` gives it)."""
        optimizer.load_state_dict(state)
