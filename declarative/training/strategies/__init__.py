"""Strategies a run can name (`trainer.strategy`), one file per kind, as Lightning Fabric's.

    trainer:
      strategy: ddp                                   # or auto, single_device, fsdp, xla
      strategy: {ddp: {find_unused_parameters: true}} # with torch's own arguments
      strategy: {fsdp: {auto_wrap: [TransformerEncoderLayer], cpu_offload: false}}

`auto` is single_device for one device, ddp for several (xla on TPUs).
"""

from __future__ import annotations

from declarative.registry import Registry
from declarative.training.strategies.base import Strategy
from declarative.training.strategies.ddp import DDPStrategy, ParallelStrategy
from declarative.training.strategies.fsdp import FSDPStrategy
from declarative.training.strategies.single_device import SingleDeviceStrategy
from declarative.training.strategies.xla import XLAStrategy

__all__ = ["STRATEGIES", "Strategy", "ParallelStrategy", "SingleDeviceStrategy", "DDPStrategy", "FSDPStrategy",
           "XLAStrategy", "auto_strategy_name"]

STRATEGIES = Registry("strategy", list_command="dtrain layers --kind strategy")
for _cls in (SingleDeviceStrategy, DDPStrategy, FSDPStrategy, XLAStrategy):
    STRATEGIES.add_class(_cls, name=_cls.name, constraints={"bucket_cap_mb": {"exclusiveMinimum": 0}})


def auto_strategy_name(accelerator_name: str, processes: int) -> str:
    """What `strategy: auto` means for this accelerator and number of processes, as in Lightning."""
    if accelerator_name == "tpu":
        return "xla"
    return "ddp" if processes > 1 else "single_device"
