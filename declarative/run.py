"""Run a spec: assemble it, train, validate, test, and record it all in a run directory.

This is what `dtrain run` and `dtrain test` call, on every process of a run:

    fit_spec(spec)          → runs/<name>/version_<N>/ with spec.yaml, logs, checkpoints, results.json
    test_checkpoint(path)   → the test metrics of a checkpoint, rebuilt from the spec it embeds

Process 0 alone writes the run folder, the logs and the checkpoints, and prints.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
from rich.console import Console

from declarative.assembly.build import Assembly, assemble
from declarative.assembly.record import spec_text
from declarative.assembly.tasks import task_summary
from declarative.assembly.tuning import adopt_tuned, tune, tuned_results
from declarative.callbacks import CALLBACKS, ModelCheckpoint, TrainingSpikeError, callback_results
from declarative.callbacks.model_summary import summary_depth
from declarative.callbacks.progress_bars import check_progress_bars
from declarative.errors import Location, Problem, SpecError
from declarative.loggers.build import build_loggers as build_spec_loggers, check_loggers, log_graphs
from declarative.spec.config import Spec
from declarative.training.checkpoint import load_checkpoint
from declarative.training.components import OPTIMIZERS
from declarative.training.errors import EngineError, MisconfigurationError
from declarative.assembly.param_groups import param_groups
from declarative.training.progress import print_results
from declarative.training.run_dir import RunDir
from declarative.training.run_record import RunRecord
from declarative.training.seed import reproducible
from declarative.assembly.schedulers import build_scheduler as build_chain
from declarative.training.threads import intra_op_threads
from declarative.training.trainer import LRSchedulerConfig, Trainer

__all__ = ["RunResult", "fit_spec", "test_checkpoint", "build_callbacks", "build_loggers", "build_scheduler"]


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path | None  # None for a fast_dev_run, which writes nothing
    val_metrics: dict[str, float]
    test_metrics: dict[str, float]
    best_model_path: str | None  # the best checkpoint by a ModelCheckpoint monitor, if any
    last_model_path: str | None
    epochs: int  # epochs completed
    global_step: int  # optimizer steps taken
    stopped_early: bool


def fit_spec(spec: Spec, *, console: Console | None = None, resume_from: str | Path | None = None,
             overrides: Iterable[str] = ()) -> RunResult:
    """Train a spec, validate it, test it when it has a test split; everything lands in a new run directory.

    With `resume_from` (a checkpoint file), the run goes on exactly where that checkpoint was saved, in
    its run folder; `overrides` are recorded there with the resume."""
    from declarative.assembly import resume

    console = console or Console()
    contents = None
    if resume_from is not None:
        contents = load_checkpoint(resume_from)
        spec = resume.adopt_recorded_seed(spec, contents)
        spec = adopt_tuned(spec, contents)  # what the run's finders chose, as its checkpoint records it
    callbacks, paths = build_callbacks_with_paths(spec)
    with reproducible(spec.seed, deterministic=spec.trainer.deterministic, benchmark=spec.trainer.benchmark), \
            intra_op_threads(spec.trainer.num_threads) as threads:
        run = assemble(spec, console=console, callbacks=callbacks, callback_paths=paths)
        try:
            if contents is None:
                return _fit(run, console, threads)
            checkpoint = Path(resume_from)
            resume.check_same_training(run.spec, contents, checkpoint)
            return _fit(run, console, threads, (checkpoint, contents, resume.run_folder_of(checkpoint, contents),
                                                list(overrides)))
        finally:
            run.strategy.teardown()


def _fit(run: Assembly, console: Console, threads: str, resuming: tuple | None = None) -> RunResult:
    from declarative.assembly.preflight import check_before_training

    spec, trainer, strategy, data = run.spec, run.trainer, run.strategy, run.data
    optimizer = OPTIMIZERS.build_component(spec.optimizer, spec,
                                           params=param_groups(strategy.unwrap(run.model), spec.optimizer, spec))
    run = tune(run, optimizer, resuming=resuming is not None)  # the finders, before the scheduler reads the rates
    spec, data = run.spec, run.data
    try:
        check_before_training(spec, run.plan, data)  # a scheduler too short, a batch BatchNorm cannot train on
        check_loggers(spec)  # their arguments and extras, before the run folder
        scheduler = build_scheduler(spec, optimizer, spec.trainer.settings().limit("train", len(data.train)))
    except MisconfigurationError as exc:
        raise run.locator.error(exc) from None
    if strategy.is_global_zero:
        if depth := summary_depth(spec.trainer.enable_model_summary, trainer.callbacks):
            from declarative.model.summary import print_summary

            print_summary(console, run.plan, spec.name, depth)
        console.print(f"{data.description}; {threads}", markup=False, highlight=False)
        if chosen := task_summary(spec):
            console.print(chosen, markup=False, highlight=False)
        if run.plugins.precision.name == "16-mixed" and strategy.root_device.type == "cpu":
            console.print("note: 16-mixed on the CPU runs 4-8x slower than 32-true here (float16 has few fast CPU "
                          "kernels, and GradScaler adds work); bf16-mixed or 32-true train faster", markup=False,
                          highlight=False)
    # The run folder comes after everything that can reject the spec, and goes again if fit's own
    # checks reject it: a rejected spec leaves no run folder behind. Process 0 makes it; the others
    # learn its path, for ModelCheckpoint's folder.
    fast_dev_run = spec.trainer.settings().fast_dev_batches > 0  # writes nothing, as Lightning's
    run_dir = None
    if resuming is not None:  # the run goes on in its own folder, which records the resume
        run_dir = RunDir(resuming[2])
        if strategy.is_global_zero:
            from declarative.assembly.resume import record_resume

            record_resume(run_dir.path, resuming[0], resuming[1], resuming[3])
            run_dir.write_record(spec_text(spec))
    else:
        if strategy.is_global_zero and not fast_dev_run:
            try:
                run_dir = RunDir.create(spec.trainer.default_root_dir, spec.name, spec_text(spec))
            except MisconfigurationError as exc:  # a root it cannot make a folder in
                raise run.locator.error(exc) from None
        path = strategy.broadcast(str(run_dir.path) if run_dir else None)
        run_dir = RunDir(Path(path)) if path else None
    if run_dir is not None:
        trainer.root_dir = run_dir.path
    record = RunRecord.start(run_dir.path) if strategy.is_global_zero and run_dir is not None else None  # run.json
    config = _scheduler_config(spec, scheduler)
    status, rejected, error = "failed", False, None
    try:
        # a logging service that refuses to start (no server, no login) is a located error, as fit's own checks
        trainer.loggers = build_loggers(spec, run_dir) if strategy.is_global_zero and run_dir is not None else []
        log_graphs(run, trainer.loggers, console)  # TensorBoardLogger's log_graph
        trainer.fit(run.model, run.loss_fn, optimizer, data, config,
                    ckpt_path=resuming[1] if resuming is not None else None)
        if data.test is not None:
            trainer.test(run.model, run.loss_fn, data.test, ckpt_path=trainer.best_model_path)
        status = "success"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except (EngineError, SpecError) as exc:
        # found by fit's checks or the sanity check: no run happened (a resumed run's folder stays, always)
        rejected = trainer.global_step == 0 and resuming is None and not isinstance(exc, TrainingSpikeError)
        located = run.locator.error(exc) if isinstance(exc, EngineError) else exc
        error = str(located)
        raise located from None
    finally:
        trainer.finalize(status)
        if record is not None:
            record.finish(status)
        if strategy.is_global_zero and run_dir is not None:
            if rejected:
                shutil.rmtree(run_dir.path, ignore_errors=True)
            elif status != "success":
                _result(trainer, run_dir, status, error)  # what it got to, and why it stopped
    result = _result(trainer, run_dir, status)
    if strategy.is_global_zero:
        where = (f"run folder: {run_dir.path}" if run_dir is not None else
                 f"fast_dev_run: {spec.trainer.settings().fast_dev_batches} batch(es) of each stage ran; nothing "
                 "was written")
        console.print(where, markup=False, highlight=False, soft_wrap=True)
        print_results(console, {**result.val_metrics, **result.test_metrics}, title=spec.name)
    return result


def _result(trainer: Trainer, run_dir: RunDir | None, status: str, error: str | None = None) -> RunResult:
    """The run's outcome, also written to results.json (by process 0; not for a fast_dev_run)."""
    checkpoints = trainer.checkpoint_callbacks
    best = trainer.best_model_path
    best_score = next((cb.best_model_score for cb in checkpoints if cb.monitor and cb.best_model_path == best), None)
    result = RunResult(
        run_dir=run_dir.path if run_dir is not None else None,
        val_metrics=dict(trainer.val_metrics),
        test_metrics=dict(trainer.test_metrics),
        best_model_path=best,
        last_model_path=next((cb.last_model_path for cb in checkpoints if cb.last_model_path), None),
        epochs=trainer.current_epoch,
        global_step=trainer.global_step,
        stopped_early=trainer.should_stop,
    )
    if trainer.is_global_zero and run_dir is not None:
        run_dir.write_results({
            "status": status,
            **({"error": error} if error else {}),
            "run_dir": str(result.run_dir),
            "best_model_path": best,
            "best_model_score": best_score,
            "last_model_path": result.last_model_path,
            "epochs": result.epochs,
            "global_step": result.global_step,
            "stopped_early": result.stopped_early,
            "world_size": trainer.world_size,
            "val": result.val_metrics,
            "test": result.test_metrics,
            **callback_results(trainer.callbacks),  # e.g. Timer's time_elapsed
            **tuned_results(trainer.callbacks),
        })
    return result


def test_checkpoint(path: str | Path, overrides: Iterable[str] = (), *,
                    console: Console | None = None, split: str = "test") -> dict[str, float]:
    """Test a checkpoint alone, in this one process: its embedded spec rebuilds model and data; returns
    the `test/*` metrics. A checkpoint of a multi-process run holds the whole model, so it tests here too.

    Args:
        path: A checkpoint written by `dtrain run`.
        overrides: `key.path=value` changes to the embedded spec, e.g. where the data lives on this machine.
        split: `test`, or `val` to evaluate on the validation split (its metrics are still named test/*).
    """
    from declarative.spec.validate import spec_from_data

    console = console or Console()
    contents = load_checkpoint(path)
    overrides = list(overrides)
    spec = spec_from_data(contents["spec"], origin=str(path), overrides=overrides)
    spec = _one_process(spec, overrides)
    with reproducible(spec.seed, deterministic=spec.trainer.deterministic, benchmark=spec.trainer.benchmark):
        run = assemble(spec, console=console, state_dict=contents["state_dict"], state_origin=str(path))
        batches = getattr(run.data, split)
        if batches is None:
            raise SpecError(Problem(Location(str(path)), f"its spec has no {split} split to test on — the spec "
                                                         f"needs data.{split}, e.g. {split}: {{fraction: 0.2}}"))
        try:
            metrics = run.trainer.test(run.model, run.loss_fn, batches)
        except EngineError as exc:
            raise run.locator.error(exc) from None
    print_results(console, metrics, title=f"{spec.name} ({split})")
    return metrics


test_checkpoint.__test__ = False  # not a pytest test, though a test module may import it by this name


def _one_process(spec: Spec, overrides: list[str]) -> Spec:
    """The spec's trainer set to one process on this machine's best device, unless the overrides say otherwise:
    a checkpoint of a run on 8 GPUs tests on a laptop."""
    given = {o.split("=", 1)[0].strip() for o in overrides}
    changes: dict[str, Any] = {}
    for key, value in (("devices", 1), ("num_nodes", 1), ("strategy", "auto"), ("accelerator", "auto")):
        if f"trainer.{key}" not in given:
            changes[key] = value
    return dataclasses.replace(spec, trainer=dataclasses.replace(spec.trainer, **changes))


def build_callbacks_with_paths(spec: Spec) -> tuple[list[Any], list[tuple]]:
    """The spec's callbacks (through `build_callbacks`) and the spec path of each, for located errors."""
    callbacks = build_callbacks(spec)
    paths = [getattr(cb, "spec_path", ()) for cb in callbacks]
    return callbacks, paths


def build_callbacks(spec: Spec) -> list[Any]:
    """The spec's callbacks, plus Lightning's default checkpointing (here: last.ckpt) when none is listed.

    Each carries `spec_path`, where the spec lists it (the assembly's record, not the engine's)."""
    callbacks = []
    for component in spec.callbacks:
        callback = CALLBACKS.build_component(component, spec)
        callback.spec_path = component.path + (component.name,)
        callbacks.append(callback)
    check_progress_bars(spec, callbacks)
    if spec.trainer.fast_dev_run:  # a quick check keeps no checkpoint, as Lightning's fast_dev_run
        callbacks = [cb for cb in callbacks if not isinstance(cb, ModelCheckpoint)]
        return callbacks
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
    return build_spec_loggers(spec, run_dir.path)


def _scheduler_config(spec: Spec, scheduler: Any) -> LRSchedulerConfig | None:
    config = spec.scheduler
    if config is None or scheduler is None:
        return None
    return LRSchedulerConfig(scheduler, config.interval, config.frequency, config.monitor)


def build_scheduler(spec: Spec, optimizer: torch.optim.Optimizer, num_train_batches: int) -> Any:
    """The spec's LR scheduler, with T_max / total_steps filled in from the trainer settings when left out."""
    config = spec.scheduler
    if config is None:
        return None
    return build_chain(config.scheduler, spec, optimizer, lambda: _scheduler_steps(spec, num_train_batches))


def _scheduler_steps(spec: Spec, num_train_batches: int) -> int:
    """How many times the scheduler will step over the whole fit."""
    config = spec.scheduler
    settings = spec.trainer
    per_epoch = math.ceil(num_train_batches / settings.accumulate_grad_batches)
    if config.interval == "step":
        total = settings.stepping_batches(num_train_batches)
    else:
        epochs = [settings.epochs_limit] if settings.epochs_limit is not None else []
        if settings.steps_limit is not None:  # whichever limit ends the fit first
            epochs.append(math.ceil(settings.steps_limit / max(per_epoch, 1)))
        total = min(epochs, default=math.inf)
    if total == math.inf:
        raise spec.error(("scheduler",), f"{config.scheduler.name}'s length follows the run's, but this run has no "
                                         "limit (max_epochs: -1, no max_steps) — give its length (T_max, total_steps) "
                                         "or a limit")
    return max(1, math.ceil(total / config.frequency))
