"""XLA devices (TPU cores) through torch_xla: one process per device, started by torch_xla itself."""

from __future__ import annotations

from typing import Any, ContextManager

import torch
from torch import nn

from declarative.training.strategies.base import Strategy

__all__ = ["XLAStrategy"]


class XLAStrategy(Strategy):
    """torch_xla's data parallelism: gradients all-reduced before each optimizer step, the graph cut after it.

    With one device it is one process; with several, `dtrain run` starts one process per device
    through `torch_xla.launch` (PJRT), and each finds its ordinal from torch_xla's runtime.
    """

    name = "xla"

    @property
    def distributed(self) -> bool:  # type: ignore[override]
        return self.world_size > 1

    @property
    def world_size(self) -> int:
        import torch_xla.runtime as xr

        return xr.world_size()

    @property
    def global_rank(self) -> int:
        import torch_xla.runtime as xr

        return xr.global_ordinal()

    @property
    def local_rank(self) -> int:
        import torch_xla.runtime as xr

        return xr.local_ordinal()

    @property
    def root_device(self) -> torch.device:
        import torch_xla

        return torch_xla.device()

    def inference_context(self) -> ContextManager:
        return torch.no_grad()  # torch_xla's tensors do not support inference mode

    def before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.world_size > 1:
            import torch_xla.core.xla_model as xm

            xm.reduce_gradients(optimizer)

    def mark_step(self) -> None:
        import torch_xla

        torch_xla.sync()  # one graph per step: XLA compiles it once and replays it

    def all_reduce(self, tensors: list[torch.Tensor]) -> None:
        if self.world_size > 1:
            import torch_xla.core.xla_model as xm

            xm.all_reduce(xm.REDUCE_SUM, tensors)

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        if self.world_size == 1:
            return obj
        import pickle

        import torch_xla.core.xla_model as xm

        data = torch.frombuffer(bytearray(pickle.dumps(obj)), dtype=torch.uint8)
        size = torch.tensor([data.numel() if self.global_rank == src else 0], device=self.root_device)
        xm.all_reduce(xm.REDUCE_SUM, [size])
        buffer = torch.zeros(int(size.item()), dtype=torch.uint8, device=self.root_device)
        if self.global_rank == src:
            buffer.copy_(data.to(self.root_device))
        xm.all_reduce(xm.REDUCE_SUM, [buffer])
        return pickle.loads(buffer.cpu().numpy().tobytes())

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch_xla.core.xla_model as xm

            xm.rendezvous("dtrain-barrier")

    def reduce_any(self, flag: bool) -> bool:
        if self.world_size == 1:
            return flag
        tensor = torch.tensor([float(flag)], device=self.root_device)
        self.all_reduce([tensor])
        return bool(tensor.item() > 0)

    def model_state_dict(self, module: nn.Module) -> dict[str, Any]:
        return _to_cpu(module.state_dict())

    def optimizer_state_dict(self, module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        return _to_cpu(optimizer.state_dict())


def _to_cpu(data: Any) -> Any:
    """Every tensor in nested dicts and lists copied to the CPU (torch.save writes no XLA tensors)."""
    if isinstance(data, torch.Tensor):
        return data.cpu()
    if isinstance(data, dict):
        return {key: _to_cpu(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(_to_cpu(value) for value in data)
    return data
