"""The run's engine plugins from `trainer.accelerator`, `devices`, `num_nodes`, `strategy` and `precision`."""

from __future__ import annotations

from dataclasses import dataclass

from declarative.spec.config import Spec
from declarative.training.accelerators import Accelerator, select_accelerator
from declarative.training.environments import ClusterEnvironment, detect_environment
from declarative.training.errors import MisconfigurationError
from declarative.training.memory_format import with_memory_format
from declarative.training.precision import FSDPPrecision, PrecisionPlugin, select_precision
from declarative.training.strategies import STRATEGIES, Strategy, auto_strategy_name

__all__ = ["Plugins", "ProcessPlan", "plan_processes", "select_plugins"]


@dataclass(frozen=True)
class ProcessPlan:
    """How many processes a run needs, and whether a launcher already started this one."""

    accelerator: Accelerator
    device_ids: list[int]
    num_nodes: int
    strategy_name: str
    environment: ClusterEnvironment | None

    @property
    def processes(self) -> int:
        return len(self.device_ids) * self.num_nodes

    @property
    def needs_launch(self) -> bool:
        """This process must start the run's processes itself (one machine, several devices, no launcher)."""
        return self.environment is None and self.processes > 1 and self.strategy_name != "xla"


@dataclass
class Plugins:
    """The run's accelerator, strategy (configured) and precision."""

    accelerator: Accelerator
    strategy: Strategy
    precision: PrecisionPlugin


def plan_processes(spec: Spec, environment: ClusterEnvironment | None = None) -> ProcessPlan:
    """Resolve accelerator, devices, nodes and strategy name; a SpecError at the setting that cannot be met."""
    trainer = spec.trainer
    try:
        accelerator = select_accelerator(trainer.accelerator)
        if environment is not None and trainer.devices == "auto" and accelerator.name == "cpu":
            device_ids = list(range(environment.local_world_size))  # as many as the launcher started here
        else:
            device_ids = accelerator.parse_devices(trainer.devices)
        name = trainer.strategy_name
        if name == "auto":
            name = auto_strategy_name(accelerator.name, len(device_ids) * trainer.num_nodes)
        _check_strategy(name, accelerator, len(device_ids) * trainer.num_nodes)
        plan = ProcessPlan(accelerator, device_ids, trainer.num_nodes, name, environment)
        if environment is not None and environment.world_size != plan.processes:
            raise MisconfigurationError(
                f"{environment.source} started {environment.world_size} processes, but the spec asks for num_nodes "
                f"× devices = {trainer.num_nodes} × {len(device_ids)} = {plan.processes} — set trainer.num_nodes and "
                "trainer.devices to what the launcher starts", ("trainer", "devices"))
    except MisconfigurationError as exc:
        raise spec.error(exc.where, exc.message) from None
    return plan


def _check_strategy(name: str, accelerator: Accelerator, processes: int) -> None:
    where = ("trainer", "strategy")
    if name == "single_device" and processes > 1:
        raise MisconfigurationError(f"strategy single_device runs one device, but devices × num_nodes asks for "
                                    f"{processes} — use ddp (or auto), or devices: 1", where)
    if name == "xla" and accelerator.name != "tpu":
        raise MisconfigurationError(f"strategy xla needs accelerator: tpu, not {accelerator.name}", where)
    if accelerator.name == "tpu" and name != "xla":
        raise MisconfigurationError(f"accelerator: tpu runs with strategy xla (or auto), not {name}", where)
    if accelerator.name == "mps" and name in ("ddp", "fsdp"):
        raise MisconfigurationError(f"strategy {name} is not available on MPS — use one device", where)


def select_plugins(spec: Spec, environment: ClusterEnvironment | None = None) -> Plugins:
    """The configured plugins for this process: the accelerator, the strategy (bound to its devices and the
    launcher's environment) and the precision."""
    environment = environment if environment is not None else detect_environment()
    plan = plan_processes(spec, environment)
    if plan.processes > 1 and plan.environment is None and plan.strategy_name != "xla":
        raise spec.error(("trainer", "devices"), f"devices × num_nodes = {plan.processes} needs one process per "
                         "device: start it with `dtrain run` (which launches them), torchrun or srun")
    try:
        strategy = STRATEGIES.build_component(_strategy_component(spec, plan.strategy_name), spec)
        environment = plan.environment
        if environment is None and strategy.distributed:  # ddp or fsdp on one device: a process group of one
            environment = ClusterEnvironment("local", 1, 0, 0, 1, 0, "127.0.0.1", _free_port())
        strategy.configure(plan.accelerator, plan.device_ids, plan.num_nodes, environment,
                           sync_batchnorm=spec.trainer.sync_batchnorm)
        precision = select_precision(spec.trainer.precision, plan.accelerator.device_type, plan.strategy_name)
    except MisconfigurationError as exc:
        raise spec.error(exc.where, exc.message) from None
    if isinstance(precision, FSDPPrecision):
        strategy.mixed_precision = precision.policy
    return Plugins(plan.accelerator, strategy, with_memory_format(precision, spec.trainer.channels_last))


def _strategy_component(spec: Spec, name: str):
    """The strategy as a registry component (written at trainer.strategy), with the spec's arguments."""
    from declarative.spec.config import Component

    kwargs = spec.trainer.strategy_kwargs if spec.trainer.strategy_name == name else {}
    return Component(name, kwargs, ("trainer", "strategy"))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
