"""Run a spec: build every component, train, validate, test, and record it all in a run directory.

This is the `build → run` end of the pipeline, what `dtrain run` and `dtrain test` call:

    fit_spec(spec)          → runs/<name>/version_<N>/ with spec.yaml, logs, checkpoints, results.json
    test_checkpoint(path)   → the test metrics of a checkpoint, rebuilt from the spec it embeds
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
from rich.console import Console

from declarative.callbacks import CALLBACKS, ModelCheckpoint
from declarative.errors import Location, Problem, SpecError
from declarative.loggers import LOGGERS
from declarative.spec.config import Component, Spec
from declarative.training.accelerator import select_accelerator
from declarative.training.checkpoint import load_checkpoint
from declarative.training.components import OPTIMIZERS, SCHEDULERS
from declarative.training.precision import select_precision
from declarative.training.progress import print_results
from declarative.training.run_dir import RunDir
from declarative.training.seed import reproducible, seed_everything
from declarative.training.tasks import build_loss, resolve_task, task_summary
from declarative.training.trainer import Trainer, estimated_stepping_batches, limit_batches

__all__ = ["RunResult", "fit_spec", "test_checkpoint"]


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    val_metrics: dict[str, float]
    test_metrics: dict[str, float]
    best_model_path: str | None  # the best checkpoint by a ModelCheckpoint monitor, if any
    last_model_path: str | None
    epochs: int  # epochs completed
    global_step: int  # optimizer steps taken
    stopped_early: bool


def fit_spec(spec: Spec, *, console: Console | None = None) -> RunResult:
    """Train a spec, validate it, test it when it has a test split; everything lands in a new run directory."""
    from declarative.data import build_data, check_model_input
    from declarative.data.targets import check_targets_fit_model
    from declarative.model.builder import build_model, plan_model
    from declarative.training.preflight import check_before_training

    console = console or Console()
    accelerator = select_accelerator(spec)
    precision = select_precision(spec, accelerator)
    with reproducible(spec.seed, deterministic=spec.trainer.deterministic):
        data = data_for_plan(spec, accelerator.device)
        plan = plan_model(spec)
        model = build_model(spec, plan)  # seeded first: the same seed gives the same initial weights
        data = data or build_data(spec, accelerator.device)
        check_model_input(spec, data.input_shape)  # the input the plan resolved takes the data's samples
        resolve_task(spec, plan.output_shape, target_shape=data.target_shape,
                     target_dtype=data.target_dtype)  # before the run folder: its spec.yaml records the task
        check_targets_fit_model(spec, data.max_target, plan, data.min_target)
        console.print(data.description, markup=False, highlight=False)
        if chosen := task_summary(spec):
            console.print(chosen, markup=False, highlight=False)
        trainer = Trainer(spec, accelerator=accelerator, precision=precision, callbacks=build_callbacks(spec),
                          console=console)
        model = trainer.prepare(model)
        loss_fn = trainer.prepare(build_loss(spec))
        optimizer = OPTIMIZERS.build_component(spec.optimizer, spec, params=model.parameters())
        check_before_training(spec, plan, data)  # a scheduler too short, a last batch BatchNorm cannot train on
        scheduler = build_scheduler(spec, optimizer, limit_batches(spec, len(data.train), "limit_train_batches"))
        # The run folder comes after everything that can reject the spec, and goes again if fit's own
        # checks reject it: a rejected spec leaves no run folder behind.
        run_dir = RunDir.create(spec)
        trainer.root_dir = run_dir.path
        trainer.loggers = build_loggers(spec, run_dir)
        status, rejected = "failed", False
        try:
            trainer.fit(model, loss_fn, optimizer, data, scheduler)
            if data.test is not None:
                trainer.test(model, loss_fn, data.test, ckpt_path=trainer.best_model_path)
            status = "success"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except SpecError:
            rejected = trainer.global_step == 0  # found by fit's checks or the sanity check: no run happened
            raise
        finally:
            trainer.finalize(status)
            if rejected:
                shutil.rmtree(run_dir.path, ignore_errors=True)
    result = _result(trainer, run_dir)
    console.print(f"run folder: {run_dir.path}", markup=False, highlight=False, soft_wrap=True)
    print_results(console, {**result.val_metrics, **result.test_metrics}, title=spec.name)
    return result


def _result(trainer: Trainer, run_dir: RunDir) -> RunResult:
    """The run's outcome, also written to results.json."""
    checkpoints = trainer.checkpoint_callbacks
    best = trainer.best_model_path
    best_score = next((cb.best_model_score for cb in checkpoints if cb.monitor and cb.best_model_path == best), None)
    result = RunResult(
        run_dir=run_dir.path,
        val_metrics=dict(trainer.val_metrics),
        test_metrics=dict(trainer.test_metrics),
        best_model_path=best,
        last_model_path=next((cb.last_model_path for cb in checkpoints if cb.last_model_path), None),
        epochs=trainer.current_epoch,
        global_step=trainer.global_step,
        stopped_early=trainer.should_stop,
    )
    run_dir.write_results({
        "run_dir": str(result.run_dir),
        "best_model_path": best,
        "best_model_score": best_score,
        "last_model_path": result.last_model_path,
        "epochs": result.epochs,
        "global_step": result.global_step,
        "stopped_early": result.stopped_early,
        "val": result.val_metrics,
        "test": result.test_metrics,
    })
    return result


def test_checkpoint(path: str | Path, overrides: Iterable[str] = (), *,
                    console: Console | None = None) -> dict[str, float]:
    """Test a checkpoint alone: its embedded spec rebuilds model and data; returns the `test/*` metrics.

    Args:
        path: A checkpoint written by `dtrain run`.
        overrides: `key.path=value` changes to the embedded spec, e.g. where the data lives on this machine.
    """
    from declarative.data import build_data, check_model_input
    from declarative.data.targets import check_targets_fit_model
    from declarative.model.builder import build_model, plan_model
    from declarative.spec.validate import spec_from_data

    console = console or Console()
    contents = load_checkpoint(path)
    spec = spec_from_data(contents["spec"], origin=str(path), overrides=overrides)
    accelerator = select_accelerator(spec)
    precision = select_precision(spec, accelerator)
    with reproducible(spec.seed, deterministic=spec.trainer.deterministic):
        data = data_for_plan(spec, accelerator.device)
        plan = plan_model(spec)
        model = build_model(spec, plan)
        try:
            model.load_state_dict(contents["state_dict"])
        except (RuntimeError, TypeError, ValueError, AttributeError) as exc:  # a hand-edited or foreign state_dict
            raise SpecError(Problem(Location(str(path)), "its weights do not fit the model its spec builds: "
                                    + str(exc).strip().splitlines()[0])) from None
        data = data or build_data(spec, accelerator.device)
        check_model_input(spec, data.input_shape)  # the input the plan resolved takes the data's samples
        resolve_task(spec, plan.output_shape, target_shape=data.target_shape,
                     target_dtype=data.target_dtype)  # a checkpoint's spec is resolved already: this only checks
        check_targets_fit_model(spec, data.max_target, plan, data.min_target)
        if data.test is None:
            raise SpecError(Problem(Location(str(path)), "its spec has no test split to test on — the spec needs "
                                                         "data.test, e.g. test: {fraction: 0.2}"))
        trainer = Trainer(spec, accelerator=accelerator, precision=precision, console=console)
        model = trainer.prepare(model)
        metrics = trainer.test(model, trainer.prepare(build_loss(spec)), data.test)
    print_results(console, metrics, title=f"{spec.name} (test)")
    return metrics


def data_for_plan(spec: Spec, device: torch.device):
    """The run's data, built before the model when the model takes values from it (`input: auto`,
    `${data.*}`), so the plan reads them from the data just loaded and the data is loaded once; else
    None, and the data is built after the model, as a model error is then found before any data is read.
    The generators are seeded again after it: the model's initial weights do not depend on the order."""
    from declarative.data import build_data
    from declarative.data.info import DataInfo
    from declarative.model.data_values import uses_data

    if not uses_data(spec):
        return None
    data = build_data(spec, device)
    spec.model.data = DataInfo(data.input_shape, data.num_classes)
    seed_everything(spec.seed)
    return data


test_checkpoint.__test__ = False  # not a pytest test, though a test module may import it by this name


def build_callbacks(spec: Spec) -> list[Any]:
    """The spec's callbacks, plus Lightning's default checkpointing (here: last.ckpt) when none is listed."""
    callbacks = []
    for component in spec.callbacks:
        callback = CALLBACKS.build_component(component, spec)
        callback.spec_path = component.path + (component.name,)
        callbacks.append(callback)
    listed = any(isinstance(cb, ModelCheckpoint) for cb in callbacks)
    if listed and not spec.trainer.enable_checkpointing:
        raise spec.error(("trainer", "enable_checkpointing"),
                         "enable_checkpointing is false, but callbacks lists a ModelCheckpoint — remove one of them")
    if spec.trainer.enable_checkpointing and not listed:
        default = ModelCheckpoint(save_top_k=0, save_last=True)
        default.spec_path = ("trainer", "enable_checkpointing")
        callbacks.append(default)
    return callbacks


def build_loggers(spec: Spec, run_dir: RunDir) -> list[Any]:
    """The spec's loggers, writing into the run directory."""
    return [LOGGERS.build_component(Component.parse(item, ("logger", i)), spec, save_dir=str(run_dir.path))
            for i, item in enumerate(spec.logger)]


def build_scheduler(spec: Spec, optimizer: torch.optim.Optimizer, num_train_batches: int) -> Any:
    """The spec's LR scheduler, with T_max / total_steps filled in from the trainer settings when left out."""
    config = spec.scheduler
    if config is None:
        return None
    component = config.scheduler
    missing = SCHEDULERS[component.name].inferred - set(component.kwargs)
    inferred = {}
    if missing:
        steps = _scheduler_steps(spec, num_train_batches)
        inferred = {name: steps for name in missing}
    return SCHEDULERS.build_component(component, spec, optimizer=optimizer, **inferred)


def _scheduler_steps(spec: Spec, num_train_batches: int) -> int:
    """How many times the scheduler will step over the whole fit."""
    config = spec.scheduler
    per_epoch = math.ceil(num_train_batches / spec.trainer.accumulate_grad_batches)
    if config.interval == "step":
        total = estimated_stepping_batches(spec, num_train_batches)
    else:
        epochs = [spec.trainer.epochs_limit] if spec.trainer.epochs_limit is not None else []
        if spec.trainer.max_steps is not None:  # whichever limit ends the fit first
            epochs.append(math.ceil(spec.trainer.max_steps / max(per_epoch, 1)))
        total = min(epochs)
    return max(1, math.ceil(total / config.frequency))
