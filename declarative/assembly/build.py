"""One assembled run: a resolved spec turned into plain PyTorch objects and a Trainer.

`dtrain run` (fit_spec) and `dtrain test` (test_checkpoint) share this sequence:

    plugins (accelerator, strategy, precision) → process group → data the model reads values from
    → model plan and weights (seeded) → data → task, loss, metrics (resolved) → Trainer → model set up
    by the strategy

Every problem found on the way is a located SpecError; the Locator it returns turns the engine's
errors during the run into located problems too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from rich.console import Console

from declarative.assembly.locate import Locator
from declarative.assembly.plugins import Plugins, select_plugins
from declarative.assembly.record import checkpoint_extras
from declarative.assembly.tasks import build_loss, resolve_task
from declarative.errors import Location, Problem, SpecError
from declarative.spec.config import Component, Spec
from declarative.training.errors import EngineError
from declarative.training.metrics import METRICS, StageMetrics, duplicate_metrics, metric_log_name
from declarative.training.seed import seed_everything
from declarative.training.trainer import Trainer

__all__ = ["Assembly", "assemble", "data_for_plan"]


@dataclass
class Assembly:
    """What a run is made of, ready to fit or test."""

    spec: Spec  # resolved: task, loss, metrics and data values filled in
    plugins: Plugins
    trainer: Trainer
    model: torch.nn.Module  # on its device, wrapped by the strategy
    loss_fn: torch.nn.Module
    data: Any  # declarative.data.DataModule
    locator: Locator
    plan: Any  # declarative.model.builder.ModelPlan: the layers, their shapes and parameter counts

    @property
    def strategy(self):
        return self.plugins.strategy


def assemble(spec: Spec, *, console: Console, callbacks: Sequence[Any] = (), callback_paths: Sequence[tuple] = (),
             state_dict: dict | None = None, state_origin: str = "") -> Assembly:
    """Build everything a run needs; call it inside `reproducible(spec.seed)`.

    Args:
        spec: the validated spec.
        console: where the trainer prints (process 0 only).
        callbacks, callback_paths: the run's callbacks and the spec path of each, for located errors.
        state_dict: weights to load into the model before the strategy wraps it (testing a checkpoint).
        state_origin: the file those weights came from, for a located error when they do not fit.
    """
    from declarative.data import build_data, check_model_input
    from declarative.data.targets import check_targets_fit_model
    from declarative.model.builder import build_model, plan_model

    plugins = select_plugins(spec)
    strategy = plugins.strategy
    strategy.setup_environment()
    device = strategy.root_device
    rank, world = strategy.global_rank, strategy.world_size
    spec, data = data_for_plan(spec, device, rank=rank, num_replicas=world)
    plan = plan_model(spec)
    model = build_model(spec, plan)  # seeded first: the same seed gives the same initial weights
    if state_dict is None and spec.model.init_from is not None:  # a warm start (a checkpoint has its own weights)
        from declarative.model.init_from import load_init_from

        loaded = load_init_from(spec, model)
        if strategy.is_global_zero:
            console.print(loaded, markup=False, highlight=False, soft_wrap=True)
    if state_dict is not None:
        try:
            model.load_state_dict(state_dict)
        except (RuntimeError, TypeError, ValueError, AttributeError) as exc:  # a hand-edited or foreign state_dict
            raise SpecError(Problem(Location(state_origin), "its weights do not fit the model its spec builds: "
                                    + str(exc).strip().splitlines()[0])) from None
    data = data or build_data(spec, device, rank=rank, num_replicas=world)
    if world > 1:
        torch.manual_seed(spec.seed + rank)  # each process its own dropout masks; process 0 draws as one alone would
    check_model_input(spec, data.input_shape)  # the input the plan resolved takes the data's samples
    spec = resolve_task(spec, plan.output_shape, target_shape=data.target_shape, target_dtype=data.target_dtype)
    check_targets_fit_model(spec, data.max_target, plan, data.min_target)
    metrics = build_stage_metrics(spec, plan.output_shape if world > 1 else None, data)
    trainer = Trainer(spec.trainer.settings(), strategy=strategy, precision=plugins.precision, metrics=metrics,
                      callbacks=callbacks, console=console, hparams=spec.to_dict(),
                      checkpoint_extras=checkpoint_extras(spec))
    module_paths = {f"layers.{node.name}": node.component.path for _, node in plan.walk()}
    locator = Locator(spec, list(callback_paths), module_paths)
    try:
        model = trainer.setup_module(model)
    except EngineError as exc:  # what the strategy cannot do with this model on these devices (sync_batchnorm)
        raise locator.error(exc) from None
    loss_fn = plugins.precision.convert_module(build_loss(spec).to(device))
    return Assembly(spec, plugins, trainer, model, loss_fn, data, locator, plan)


def build_stage_metrics(spec: Spec, output_shape: tuple[int, ...] | None, data: Any) -> dict[str, StageMetrics]:
    """Each stage's loss and metrics. With `output_shape` (runs of several processes), their states are
    sized before the first batch, from a batch of no samples shaped as the run's outputs and targets."""
    items = spec.metrics or []
    for index, name in duplicate_metrics(items):
        raise spec.error(("metrics", index), f"metric '{name}' is listed twice")
    empty_batch = None
    if output_shape is not None:
        def empty_batch(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
            return (torch.zeros((0, *output_shape), device=device),
                    torch.zeros((0, *data.target_shape), dtype=data.target_dtype, device=device))

    def stage_metrics(stage: str) -> StageMetrics:
        built = {metric_log_name(item): METRICS.build_component(Component.parse(item, ("metrics", i)), spec,
                                                                task=spec.task)
                 for i, item in enumerate(items)}
        return StageMetrics(stage, built, empty_batch)

    return {stage: stage_metrics(stage) for stage in ("train", "val", "test")}


def data_for_plan(spec: Spec, device: torch.device, *, rank: int = 0, num_replicas: int = 1):
    """The spec with the values its model takes from the data (`input: auto`, `${data.*}`), and that data,
    built before the model so the plan reads them from the data just loaded and the data is loaded once.
    When the model takes no values from the data: the spec as it is, and None (the data is built after the
    model, so that a model error is found before any data is read). The generators are seeded again after
    it: the model's initial weights do not depend on the order."""
    from declarative.data import build_data
    from declarative.data.info import DataInfo
    from declarative.model.data_values import uses_data

    if not uses_data(spec):
        return spec, None
    data = build_data(spec, device, rank=rank, num_replicas=num_replicas)
    info = DataInfo(data.input_shape, data.num_classes, data.vocab_size, data.input_dtype)
    spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, data=info))
    seed_everything(spec.seed)
    return spec, data
