"""The training loop: Lightning's `fit` and `test`, on plain PyTorch objects.

    fit:  sanity validation → for each epoch: train batches (accumulate, clip, step, schedule; a
          mid-epoch validation where val_check_interval says) → epoch metrics → validation (at the
          epoch's end, every check_val_every_n_epoch) → callbacks → scheduler
    test: one pass over the test split

The Trainer knows nothing of specs: it takes settings (Lightning's Trainer arguments), built
modules, an optimizer, a scheduler, batches, metrics, callbacks, loggers and three plugins —
the strategy (how processes share the work), the precision and, through the strategy, the
accelerator. It raises plain exceptions (declarative/training/errors.py) that name the input at
fault; the assembly layer turns them into located spec problems.

Fast by default: losses and metrics accumulate on the device, and the host reads them only when
it logs (every `log_every_n_steps` optimizer steps, and once per epoch); evaluation runs under
`torch.inference_mode()`. Under several processes the metric sums are all-reduced at those same
moments, so every process sees (and decides on) the same values.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import torch
from rich.console import Console

from declarative.callbacks.base import require_metric
from declarative.callbacks.model_checkpoint import ModelCheckpoint
from declarative.training import preemption
from declarative.training.checkpoint import WEIGHTS_ONLY_RESUME, link_or_copy, load_checkpoint, save_checkpoint
from declarative.training.errors import (EngineError, MisconfigurationError, NonFiniteLossError, StepError,
                                         is_peer_failure)
from declarative.training.metrics import MetricInputError, StageMetrics
from declarative.training.precision import PrecisionPlugin
from declarative.training.profilers import Profiler, build_profiler
from declarative.training.resume import gather_objects, load_rng_state, rng_state, to_cpu
from declarative.training.settings import TrainerSettings
from declarative.training.strategies import Strategy
from declarative.training.val_schedule import ValidationSchedule

__all__ = ["BatchSource", "DataSplits", "LRSchedulerConfig", "Trainer"]

STAGES = ("train", "val", "test")


class BatchSource(Protocol):
    """One split's batches: `(inputs, targets)` pairs already on the device (declarative.data's Batches)."""

    def __iter__(self) -> Iterator[tuple[Any, Any]]: ...

    def __len__(self) -> int: ...


class DataSplits(Protocol):
    """A run's batches; `val` and `test` are None when the run has no such split."""

    train: BatchSource
    val: BatchSource | None
    test: BatchSource | None


@dataclass
class LRSchedulerConfig:
    """An LR scheduler and when it steps, as Lightning's `lr_scheduler` config says it."""

    scheduler: Any
    interval: str = "epoch"  # "epoch" or "step"
    frequency: int = 1
    monitor: str | None = "val/loss"  # what ReduceLROnPlateau reads


class Trainer:
    """Fits and tests a model with Lightning's loop and names, on one or many processes.

    Args:
        settings: the loop's Lightning arguments (max_epochs, limits, accumulation, clipping, ...).
        strategy: a configured strategy (single_device, ddp, fsdp, xla); it knows the device.
        precision: autocast, loss scaling and dtype conversion.
        metrics: each stage's StageMetrics ("train", "val", "test"); states are summed over processes.
        callbacks: called in order at each hook; any object with the hook's method name works.
        loggers: every logged scalar goes to each of them (only process 0 should be given any).
        root_dir: the run directory; ModelCheckpoint's default folder is `root_dir/checkpoints`
            (settable until `fit`; default: the working directory).
        console: where messages and the progress bar go (process 0 only prints).
        hparams: the run's settings, logged once as hyperparameters (plain data).
        checkpoint_extras: plain data every checkpoint carries besides the training state (the spec).
    """

    def __init__(
        self,
        settings: TrainerSettings,
        *,
        strategy: Strategy,
        precision: PrecisionPlugin,
        metrics: dict[str, StageMetrics],
        callbacks: Sequence[Any] = (),
        loggers: Sequence[Any] = (),
        root_dir: str | Path | None = None,
        console: Console | None = None,
        hparams: dict[str, Any] | None = None,
        checkpoint_extras: dict[str, Any] | None = None,
    ):
        self.settings = settings
        self.strategy = strategy
        self.precision = precision
        self.console = console or Console()
        self.loggers = list(loggers)
        self.root_dir = Path(root_dir) if root_dir is not None else Path.cwd()
        self.hparams = dict(hparams or {})
        self.checkpoint_extras = dict(checkpoint_extras or {})
        from declarative.training.progress import ProgressBar

        bars = [cb for cb in callbacks if isinstance(cb, ProgressBar)]  # a listed bar replaces the default one
        self.callbacks = [cb for cb in callbacks if not isinstance(cb, ProgressBar)]
        if settings.enable_progress_bar and strategy.is_global_zero:
            self.callbacks.append(bars[0] if bars else ProgressBar(self.console))  # last: it shows what others logged
        missing = [stage for stage in STAGES if stage not in metrics]
        assert not missing, f"metrics needs a StageMetrics for {missing}"
        self.stage_metrics = dict(metrics)
        # trainer.profiler (declarative/training/profilers.py); process 0 profiles, the default records nothing
        self.profiler: Profiler = build_profiler(settings.profiler if strategy.is_global_zero else None)

        self.model: torch.nn.Module | None = None
        self.optimizers: list[torch.optim.Optimizer] = []
        self.lr_scheduler: LRSchedulerConfig | None = None
        self.train_dataloader: BatchSource | None = None  # set by fit
        self.current_epoch = 0
        self.global_step = 0
        self.should_stop = False
        self.accumulate_grad_batches = settings.accumulate_grad_batches  # GradientAccumulationScheduler changes it
        self.sanity_checking = False
        self.log_step_due = False  # True during on_train_batch_end of a batch that logs step scalars
        self.num_train_batches = 0
        self.num_val_batches = 0
        self.num_test_batches = 0
        self._has_validation = False
        self._val_schedule: ValidationSchedule | None = None  # when fit validates (set by fit)
        self._val_batches: BatchSource | None = None
        # Floats, and nested lists for per-class values and confusion matrices (see StageMetrics).
        self.callback_metrics: dict[str, Any] = {}
        self.val_metrics: dict[str, Any] = {}
        self.test_metrics: dict[str, Any] = {}
        self._pending_logs: dict[str, float] = {}
        self._nonfinite_step: torch.Tensor | None = None  # first step whose training loss was not finite, -1: none
        self._device_step: torch.Tensor | None = None  # global_step, kept on the device
        self._fit_started = 0.0  # time.monotonic() when fit began, for max_time
        # The loop's position at the last step boundary (None between boundaries): what a checkpoint resumes from.
        self._position: dict[str, Any] | None = None
        self._batches_done = 0  # training batches of the current epoch done
        self._rows_at_step: list[dict[str, Any]] = []  # the rows logged at `_rows_step` (the latest step)
        self._rows_step = -1
        # Checkpoint saves and removals asked for during a step or an epoch end, done at the boundary that follows.
        self._deferred: list[tuple] | None = None
        self._resume: dict[str, Any] | None = None  # the checkpoint being resumed, until its epoch is restored

    # ----------------------------------------------------------------------------------------
    # What callbacks read (the TrainerView protocol of declarative/callbacks/base.py)

    @property
    def device(self) -> torch.device:
        return self.strategy.root_device

    @property
    def is_global_zero(self) -> bool:
        return self.strategy.is_global_zero

    @property
    def world_size(self) -> int:
        return self.strategy.world_size

    @property
    def has_validation(self) -> bool:
        return self._has_validation

    @property
    def logged_metric_names(self) -> list[str]:
        """The epoch-level metrics fit logs (and callbacks may monitor)."""
        stages = ["train", "val"] if self.has_validation else ["train"]
        return [name for stage in stages for name in self.stage_metrics[stage].names]

    @property
    def checkpoint_dir(self) -> Path:
        return self.root_dir / "checkpoints"

    @property
    def checkpoint_callbacks(self) -> list[ModelCheckpoint]:
        return [cb for cb in self.callbacks if isinstance(cb, ModelCheckpoint)]

    @property
    def best_model_path(self) -> str | None:
        """The best checkpoint of the first ModelCheckpoint with a monitor, else the latest one a ModelCheckpoint
        without a monitor kept (what Lightning's ckpt_path="best" means)."""
        ranked = [cb.best_model_path for cb in self.checkpoint_callbacks if cb.monitor is not None and cb.best_model_path]
        latest = [cb.best_model_path for cb in self.checkpoint_callbacks if cb.monitor is None and cb.best_model_path]
        return (ranked or latest or [None])[0]

    @property
    def max_steps_reached(self) -> bool:
        return self.settings.steps_limit is not None and self.global_step >= self.settings.steps_limit

    def log(self, metrics: dict[str, float]) -> None:
        """Queue scalars; the loggers get them together, at the current step."""
        self._pending_logs.update(metrics)
        self.callback_metrics.update(metrics)

    def print(self, message: str) -> None:
        """A message for the user (process 0 only; above the progress bar when one is live)."""
        if self.is_global_zero:
            self.console.print(message, markup=False, highlight=False)

    def save_checkpoint(self, path: str | Path, weights_only: bool = False) -> None:
        """Save the run's state to `path`; every process must call it (FSDP gathers), process 0 writes.

        Asked for during a training step or an epoch's end, the file is written at the step boundary that
        follows (before the next batch), so that it resumes exactly there. `weights_only`: the weights and
        the spec (what test, predict and export read), no optimizer, scheduler or loop state."""
        if self._deferred is not None:
            self._deferred.append(("save", str(path), (self.current_epoch, weights_only)))
        else:
            self._write_checkpoint(str(path), self.current_epoch, weights_only)

    def link_checkpoint(self, target: str | Path, link: str | Path) -> None:
        """Make `link` point at the checkpoint `target` (process 0), once the saves asked for before are written."""
        if self._deferred is not None:
            self._deferred.append(("link", str(link), str(target)))
        elif self.is_global_zero:
            link_or_copy(str(target), str(link))

    def remove_checkpoint(self, path: str | Path) -> None:
        """Delete a checkpoint file (process 0), after the saves asked for before it: a good file goes only once
        its successor is whole."""
        if self._deferred is not None:
            self._deferred.append(("remove", str(path), None))
        elif self.is_global_zero:
            Path(path).unlink(missing_ok=True)

    @property
    def interrupted_checkpoint_path(self) -> Path:
        """Where a run stopped by SIGTERM or SIGINT leaves its resumable checkpoint."""
        return self.checkpoint_dir / "interrupted.ckpt"

    def _write_checkpoint(self, path: str, epoch: int, weights_only: bool = False) -> None:
        assert self.model is not None, "save_checkpoint needs a model: call it during fit"
        strategy = self.strategy
        if weights_only:  # what test, predict and export read; nothing to resume from
            contents = {**self.checkpoint_extras, "state_dict": strategy.model_state_dict(self.model), "epoch": epoch,
                        "global_step": self.global_step, "weights_only": True}
            self._call("on_save_checkpoint", contents)  # e.g. weight averaging puts its average in state_dict
            contents.pop("callbacks", None)  # a callback's state serves a resume only
            self._save(contents, path)
            return
        position = self._position
        # Each process's generators, data position and partial metric sums (a collective: every process is here).
        ranks = gather_objects(self._rank_state(), strategy.distributed) if position is not None else []
        contents = {
            **self.checkpoint_extras,
            "state_dict": strategy.model_state_dict(self.model),
            "optimizer_states": [strategy.optimizer_state_dict(self.model, o) for o in self.optimizers],
            "lr_schedulers": [self.lr_scheduler.scheduler.state_dict()] if self.lr_scheduler is not None else [],
            "precision": self.precision.state_dict(),
            "epoch": epoch,
            "global_step": self.global_step,
            # Floats; per-class values and confusion matrices stay (nested) lists of floats.
            "metrics": {k: v if isinstance(v, list) else float(v) for k, v in self.callback_metrics.items()},
            "callbacks": self._callback_states(),
            # None: written between step boundaries (by an exception hook), so it cannot resume exactly.
            "loop": {**position, "root_dir": str(self.root_dir), "val_metrics": dict(self.val_metrics),
                     "time_elapsed": time.monotonic() - self._fit_started,
                     "logged_rows": list(self._rows_at_step), "ranks": ranks} if position is not None else None,
        }
        self._call("on_save_checkpoint", contents)  # Lightning's hook: a callback may change what is saved
        self._save(contents, path)

    def _save(self, contents: dict[str, Any], path: str) -> None:
        """Process 0 writes the file, then tells the loggers (Lightning's hook: MLflow's log_model: all uploads it)."""
        if not self.strategy.is_global_zero:
            return
        save_checkpoint(contents, path)
        for logger in self.loggers:
            if hasattr(logger, "after_save_checkpoint"):
                logger.after_save_checkpoint(path)

    def _rank_state(self) -> dict[str, Any]:
        batches = self.train_dataloader
        return to_cpu({
            "rng": rng_state(),
            "data": batches.state_dict() if hasattr(batches, "state_dict") else None,
            "train_metrics": self.stage_metrics["train"].state_dict() if self._batches_done else None,
        })

    def _callback_states(self) -> dict[str, dict]:
        """Each stateful callback's state, under its `state_key` (as Lightning keys them)."""
        states = {}
        for callback in self.callbacks:
            state = callback.state_dict() if hasattr(callback, "state_dict") else {}
            if state:
                states[getattr(callback, "state_key", type(callback).__qualname__)] = state
        return states

    # ----------------------------------------------------------------------------------------
    # Entry points

    def setup_module(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module on the device, in the run's precision, wrapped by the strategy (DDP, FSDP).

        Build the optimizer from the parameters of what this returns (FSDP replaces them with shards)."""
        return self.strategy.setup_module(self.precision.convert_module(module))

    def fit(
        self,
        model: torch.nn.Module,
        loss_fn: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        data: DataSplits,
        scheduler: LRSchedulerConfig | None = None,
        *,
        ckpt_path: str | Path | dict[str, Any] | None = None,
    ) -> None:
        """Sanity-check validation, then train (and validate) until a limit or a callback stops it.

        With `ckpt_path` (a checkpoint's path, or its loaded contents), the run goes on exactly where that
        checkpoint was saved: weights, optimizer, scheduler, precision, callbacks, loop position, every
        generator and the partial epoch's sums are restored, and the loggers drop what came after it."""
        self.model, self.optimizers, self.lr_scheduler = model, [optimizer], scheduler
        self.train_dataloader = data.train  # Lightning's name; StochasticWeightAveraging's BatchNorm pass reads it
        self.num_train_batches = self.settings.limit("train", len(data.train))
        self.num_val_batches = self.settings.limit("val", len(data.val)) if data.val is not None else 0
        # Every process must agree, or one would wait in validation's all-reduce for the others.
        self._has_validation = self.strategy.reduce_any(self.num_val_batches > 0)
        self._val_schedule = ValidationSchedule.create(self.settings, self.num_train_batches)
        self._val_batches = data.val
        if self.settings.overfit_batches:
            self.print(f"overfit_batches: training on the same {self.num_train_batches} unshuffled batches each epoch, "
                       f"validating on {self.num_val_batches} batches")
        resume = self._read_resume(ckpt_path) if ckpt_path is not None else None
        self._fit_started = time.monotonic()
        self._check_scheduler_monitor()
        self.profiler.start("fit", self._profile_dir())
        self._call("setup", "fit")
        if resume is not None:
            self._restore(resume, model, optimizer)
        self._nonfinite_step = torch.full((), -1, dtype=torch.int64, device=self.device)
        self._device_step = torch.full((), self.global_step, dtype=torch.int64, device=self.device)
        try:
            if resume is None:
                self._log_hyperparams(has_test=data.test is not None)
            self._call("on_fit_start")
            self._sanity_check(model, loss_fn, data.val)
            self._call("on_train_start")
            if resume is not None:
                self._restore_position(resume)
            parameters = [p for group in optimizer.param_groups for p in group["params"]]
            self._mark_boundary()
            self._deferred = []
            with preemption.stopping_at_boundaries():
                while not self._fit_done():
                    self._run_epoch(model, loss_fn, optimizer, parameters, data)
            self._deferred = None
            self._call("on_train_end")
            self._call("on_fit_end")
        except BaseException as exc:
            self._deferred = None  # an exception hook's save is written at once
            self._call("on_exception", exc)
            raise
        finally:
            self.profiler.finish(self.print)

    def test(
        self,
        model: torch.nn.Module,
        loss_fn: torch.nn.Module,
        batches: BatchSource,
        *,
        ckpt_path: str | Path | None = None,
    ) -> dict[str, float]:
        """Run the test split once (with the weights of `ckpt_path`, when given) and log `test/*`."""
        if ckpt_path is not None:
            # Process 0 reads the file and hands the weights on: the others need no shared file system.
            state = load_checkpoint(ckpt_path)["state_dict"] if self.strategy.is_global_zero else None
            self.strategy.load_model_state_dict(model, self.strategy.broadcast(state))
        self.model = model
        self.num_test_batches = self.settings.limit("test", len(batches))
        self.profiler.start("test", self._profile_dir())
        self._call("setup", "test")
        try:
            self._call("on_test_start")
            self.test_metrics = self._evaluate("test", model, loss_fn, batches, self.num_test_batches)
            self.log(self.test_metrics)
            self._flush_logs()
            self._call("on_test_end")
        except BaseException as exc:
            self._call("on_exception", exc)
            raise
        finally:
            self.profiler.finish(self.print)
        return self.test_metrics

    def finalize(self, status: str) -> None:
        """Flush and close the loggers."""
        for logger in self.loggers:
            logger.finalize(status)

    # ----------------------------------------------------------------------------------------
    # The loop

    def _fit_done(self) -> bool:
        if self.max_steps_reached or self.num_train_batches == 0 or self._time_up():
            return True
        limit = self.settings.epochs_limit
        if limit is not None and self.current_epoch >= limit:
            return True
        if self.should_stop and not self.settings.minimums_met(self.current_epoch, self.global_step):
            self.print(f"a callback asked to stop, but min_epochs / min_steps are not reached yet "
                       f"(epoch {self.current_epoch}, step {self.global_step}): training goes on")
            self.should_stop = False  # as Lightning: the request lapses; a callback may make it again
        return self.should_stop

    def _stop_requested(self) -> bool:
        """A callback asked to stop during the epoch (Timer), and min_epochs / min_steps allow it: the epoch ends here."""
        return self.should_stop and self.settings.minimums_met(self.current_epoch, self.global_step)

    def _time_up(self) -> bool:
        """`max_time` has passed since fit started (checked between steps; every process decides the same)."""
        limit = self.settings.max_time_seconds
        if limit is None:
            return False
        return self.strategy.reduce_any(time.monotonic() - self._fit_started >= limit)

    def _sanity_check(self, model: torch.nn.Module, loss_fn: torch.nn.Module, batches: BatchSource | None) -> None:
        """A few validation batches before training, so a broken validation fails in seconds, not after an epoch."""
        count = int(min(self.settings.sanity_steps, self.num_val_batches))
        if batches is None or not self.has_validation or self.settings.sanity_steps == 0:
            return
        self.sanity_checking = True
        self._call("on_sanity_check_start")
        self._call("on_validation_start")
        self._evaluate("val", model, loss_fn, batches, count, stage_name="sanity check")  # results are not logged
        self._call("on_validation_end")
        self._call("on_sanity_check_end")
        self.sanity_checking = False

    def _run_epoch(self, model: torch.nn.Module, loss_fn: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   parameters: list[torch.Tensor], data: DataSplits) -> None:
        if hasattr(data.train, "set_epoch"):
            data.train.set_epoch(self.current_epoch)  # reshuffle, seeded per epoch
        resumed = self._resume_epoch(data.train)
        if not resumed:  # a resumed epoch ran its start hooks before the checkpoint
            self._call("on_train_epoch_start")
            self._flush_logs()
        batches_run = self._train_epoch(model, loss_fn, optimizer, parameters, data.train, resumed)
        self._position = None  # the epoch's end: no checkpoint resumes until it is over
        if batches_run:
            values = self._compute("train")
            self._check_finite(values.get("train/loss"))
            self.log(values)
        if data.val is not None and self._validation_due(batches_run):
            self._validate(model, loss_fn, data.val)
        self._call("on_train_epoch_end")
        self._flush_logs()
        self._step_scheduler("epoch")
        self.current_epoch += 1
        self._batches_done = 0
        self._boundary(epoch_end=True)

    def _train_epoch(self, model: torch.nn.Module, loss_fn: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     parameters: list[torch.Tensor], batches: BatchSource, resumed: dict | None = None) -> int:
        """One pass over the training batches (the rest of one, when resumed); the number of batches it ran."""
        model.train()
        metrics = self.stage_metrics["train"]
        metrics.reset(self.device)
        start = self._batches_done
        if resumed is not None and resumed["train_metrics"] is not None:
            metrics.load_state_dict(resumed["train_metrics"], self.device)  # the sums of the batches before
        accumulate = self.accumulate_grad_batches
        step_loss, micro_batches, batch_idx = None, 0, start - 1
        batches = self.profiler.iterate("[_TrainingEpochLoop].train_dataloader_next",
                                        itertools.islice(batches, self.num_train_batches - start))
        for batch_idx, batch in enumerate(batches, start):
            self._position = None  # inside a step: no checkpoint resumes here
            stepping = (batch_idx + 1) % accumulate == 0 or batch_idx + 1 == self.num_train_batches
            inputs, targets = self.precision.convert_input(batch)
            with self.strategy.no_backward_sync(model, not stepping):
                outputs, loss = self._forward(model, loss_fn, inputs, targets, "train")
                self._backward(loss / accumulate if accumulate > 1 else loss)
            loss = loss.detach()
            self._update_metrics(metrics, loss, outputs.detach(), targets)
            # Remember the first step whose loss is not finite, on the device: no sync here (and the same
            # graph every step, for XLA).
            self._nonfinite_step = torch.where(torch.isfinite(loss) | (self._nonfinite_step >= 0),
                                               self._nonfinite_step, self._device_step)
            step_loss = loss if step_loss is None else step_loss + loss
            micro_batches += 1
            if stepping:
                self._optimizer_step(optimizer, parameters)
                self.global_step += 1
                self._device_step.add_(1)
                if self.global_step % self.settings.log_every_n_steps == 0:
                    self.log_step_due = True
                    self.log({"train/loss_step": self._read_step_loss(step_loss, micro_batches)})
                step_loss, micro_batches = None, 0
            self._call("on_train_batch_end", loss, batch, batch_idx)
            if stepping:
                self._flush_logs()
                self.log_step_due = False
                self._step_scheduler("step")  # after the batch hooks, so they see the rate this step used
            self._validate_within_epoch(model, loss_fn, batch_idx)
            if stepping:
                self._batches_done = batch_idx + 1
                self._boundary()
                if self.max_steps_reached or self._time_up() or self._stop_requested():
                    break
        return batch_idx + 1

    # ----------------------------------------------------------------------------------------
    # Step boundaries: where checkpoints are written, a run resumes and a stop request is honoured

    def _mark_boundary(self) -> None:
        self._position = {"epoch": self.current_epoch, "batch": self._batches_done, "global_step": self.global_step,
                          "should_stop": self.should_stop}

    def _boundary(self, epoch_end: bool = False) -> None:
        """After a step (or an epoch): write the checkpoints asked for since the last one, then stop if a
        signal asked to (on every process at the same step: they agree where they sync anyway)."""
        self._mark_boundary()
        deferred, self._deferred = self._deferred or [], []
        for action, path, detail in deferred:
            if action == "save":
                self._write_checkpoint(path, *detail)
            elif action == "link" and self.is_global_zero:
                link_or_copy(detail, path)
            elif action == "remove" and self.is_global_zero:
                Path(path).unlink(missing_ok=True)
        requested = preemption.requested()
        if self.strategy.distributed:
            if not (epoch_end or self.global_step % self.settings.log_every_n_steps == 0):
                return
            requested = (requested or "a signal") if self.strategy.reduce_any(requested is not None) else None
        if requested is not None:
            path = self.interrupted_checkpoint_path
            self._write_checkpoint(str(path), self.current_epoch)
            raise preemption.TrainingInterrupted(requested, path, self.current_epoch, self.global_step)

    def _read_resume(self, ckpt_path: str | Path | dict[str, Any]) -> dict[str, Any]:
        contents = ckpt_path if isinstance(ckpt_path, dict) else load_checkpoint(ckpt_path)
        loop = contents.get("loop")
        if contents.get("weights_only"):
            raise MisconfigurationError(WEIGHTS_ONLY_RESUME, ("ckpt_path",))
        if not loop or not loop.get("ranks"):
            raise MisconfigurationError("this checkpoint was saved in the middle of a step (by an exception hook): "
                                        "it cannot resume exactly — resume from another checkpoint of the run",
                                        ("ckpt_path",))
        if len(loop["ranks"]) != self.world_size:
            raise MisconfigurationError(f"this checkpoint comes from a run of {len(loop['ranks'])} processes; it "
                                        f"resumes with as many, not {self.world_size}", ("trainer", "devices"))
        return contents

    def _restore(self, contents: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """The state of every stateful piece, through its load_state_dict."""
        self.strategy.load_model_state_dict(model, contents["state_dict"])
        self.strategy.load_optimizer_state_dict(model, optimizer, contents["optimizer_states"][0])
        if self.lr_scheduler is not None and contents["lr_schedulers"]:
            self.lr_scheduler.scheduler.load_state_dict(contents["lr_schedulers"][0])
        self.precision.load_state_dict(contents["precision"])
        states = contents.get("callbacks", {})
        for callback in self.callbacks:
            key = getattr(callback, "state_key", type(callback).__qualname__)
            if key in states and hasattr(callback, "load_state_dict"):
                callback.load_state_dict(states[key])
        self._call("on_load_checkpoint", contents)  # Lightning's hook: e.g. weight averaging swaps its weights back
        loop = contents["loop"]
        self.current_epoch, self._batches_done = loop["epoch"], loop["batch"]
        self.global_step, self.should_stop = loop["global_step"], loop["should_stop"]
        self.callback_metrics = dict(contents.get("metrics", {}))
        self.val_metrics = dict(loop["val_metrics"])
        self._fit_started -= loop.get("time_elapsed", 0.0)  # max_time counts the training before the checkpoint too
        self._resume = loop

    def _restore_position(self, contents: dict[str, Any]) -> None:
        """Right before the first batch: the loggers forget what came after the checkpoint, and every generator
        takes the state it had there."""
        loop = contents["loop"]
        for logger in self.loggers:
            if hasattr(logger, "purge"):
                logger.purge(self.global_step)
        for row in loop["logged_rows"]:  # the rows of the checkpoint's step, logged again after the purge
            self._log_row(dict(row))
        load_rng_state(loop["ranks"][self.strategy.global_rank]["rng"])

    def _resume_epoch(self, batches: BatchSource) -> dict | None:
        """The resumed epoch's saved state (this process's), once; its batches go on from the checkpoint's."""
        if self._resume is None:
            return None
        state, self._resume = self._resume["ranks"][self.strategy.global_rank], None
        if not self._batches_done:  # saved at an epoch's end: the next epoch starts as usual
            return None
        more = self._batches_done < self.num_train_batches  # else the epoch's batches are all done
        if more and state["data"] is not None and hasattr(batches, "load_state_dict"):
            batches.load_state_dict(state["data"])
        return state

    def _forward(self, model: torch.nn.Module, loss_fn: torch.nn.Module, inputs: Any, targets: Any,
                 stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            with self.profiler.profile(_STEP_ACTIONS.get(stage, "validation_step")), self.precision.forward_context():
                outputs = model(inputs)
                loss = loss_fn(outputs, targets)
        except EngineError:
            raise
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            if isinstance(exc, torch.OutOfMemoryError) or is_peer_failure(exc):
                raise
            raise self._step_error(exc, stage, model, loss_fn) from exc
        return outputs, loss

    def _backward(self, loss: torch.Tensor) -> None:
        try:
            with self.profiler.profile("backward"):
                if self.settings.detect_anomaly:
                    with torch.autograd.detect_anomaly():
                        self.precision.backward(loss)
                else:
                    self.precision.backward(loss)
        except RuntimeError as exc:
            if isinstance(exc, torch.OutOfMemoryError) or is_peer_failure(exc):
                raise
            raise StepError(f"the backward pass fails at epoch {self.current_epoch}, step {self.global_step}: "
                            f"{_first_line(exc)}", ("model", ""), stage="train", epoch=self.current_epoch,
                            step=self.global_step) from exc

    def _read_step_loss(self, step_loss: torch.Tensor, micro_batches: int) -> float:
        """The mean loss of this step over every process: the one per-step host sync, on logging steps only."""
        if self.strategy.distributed:
            sums = torch.stack([step_loss.float(), torch.tensor(float(micro_batches), device=step_loss.device)])
            self.strategy.all_reduce([sums])
            total, count = sums.tolist()
            value = total / count
        else:
            value = (step_loss / micro_batches).item()
        self._check_finite(value)
        return value

    def _check_finite(self, value: float | None) -> None:
        """Stop the run when the training loss (read anyway, for logging) is NaN or infinite."""
        if value is None or not self.settings.check_finite_loss or value == value and abs(value) != float("inf"):
            return
        step = int(self._nonfinite_step.item()) if self._nonfinite_step is not None else -1
        step = step if step >= 0 else self.global_step
        raise NonFiniteLossError(f"the training loss became {value} at epoch {self.current_epoch}, step {step} — "
                                 "the usual causes: a learning rate too high for this model (lower it), or NaN/inf "
                                 "in the inputs or targets", epoch=self.current_epoch, step=step)

    def _optimizer_step(self, optimizer: torch.optim.Optimizer, parameters: list[torch.Tensor]) -> None:
        clip = self.settings.gradient_clip_val
        if clip:  # None or 0: no clipping, as in Lightning
            self.precision.unscale_gradients(optimizer)
            if self.settings.gradient_clip_algorithm == "norm":
                torch.nn.utils.clip_grad_norm_(parameters, clip)
            else:
                torch.nn.utils.clip_grad_value_(parameters, clip)
        self.strategy.before_optimizer_step(optimizer)
        with self.profiler.profile("optimizer_step"):
            self.precision.optimizer_step(optimizer)
        optimizer.zero_grad(set_to_none=True)
        self.strategy.mark_step()

    def _validation_due(self, batches_run: int) -> bool:
        return self.has_validation and self._val_schedule.at_epoch_end(self.current_epoch, batches_run)

    def _validate_within_epoch(self, model: torch.nn.Module, loss_fn: torch.nn.Module, batch_idx: int) -> None:
        """A mid-epoch validation when val_check_interval calls for one after this batch (logged at this step);
        a callback's stop request then ends the epoch at this batch (`_stop_requested`), as in Lightning."""
        if not (self.has_validation and self._val_schedule.within_epoch(self.current_epoch, batch_idx)):
            return
        self._validate(model, loss_fn, self._val_batches)
        self._flush_logs()

    def _validate(self, model: torch.nn.Module, loss_fn: torch.nn.Module, batches: BatchSource) -> None:
        self._call("on_validation_start")
        self.val_metrics = self._evaluate("val", model, loss_fn, batches, self.num_val_batches)
        self.log(self.val_metrics)
        self._call("on_validation_end")

    def _evaluate(self, stage: str, model: torch.nn.Module, loss_fn: torch.nn.Module, batches: BatchSource,
                  count: int, stage_name: str | None = None) -> dict[str, float]:
        """Loss and metrics over `count` batches (this process's share), in eval mode, under inference_mode.

        Every process takes part in the reduction, even one whose share has no batch."""
        metrics = self.stage_metrics[stage]
        hook = "on_validation_batch_end" if stage == "val" else f"on_{stage}_batch_end"
        was_training = model.training
        model.eval()
        with self.strategy.inference_context() if self.settings.inference_mode else torch.no_grad():
            metrics.reset(self.device)  # inside inference_mode: the state is updated by inference tensors
            batches = self.profiler.iterate(f"[_EvaluationLoop].{stage}_next", itertools.islice(batches, count))
            for batch_idx, batch in enumerate(batches):
                inputs, targets = self.precision.convert_input(batch)
                outputs, loss = self._forward(model, loss_fn, inputs, targets, stage_name or stage)
                self._update_metrics(metrics, loss, outputs, targets)
                self.strategy.mark_step()
                self._call(hook, loss, batch, batch_idx)
            values = self._compute(stage) if self.strategy.reduce_any(count > 0) else {}
        model.train(was_training)
        return values

    def _compute(self, stage: str) -> dict[str, Any]:
        """A stage's values: its metric sums added up over the processes, then read with one sync."""
        metrics = self.stage_metrics[stage]
        if self.strategy.distributed:
            self.strategy.all_reduce(metrics.states())
        return metrics.compute()

    def _update_metrics(self, metrics: StageMetrics, loss: torch.Tensor, outputs: torch.Tensor, targets: Any) -> None:
        try:
            metrics.update(loss, outputs, targets)
        except MetricInputError as exc:
            raise MisconfigurationError(str(exc), ("metrics", exc.index)) from None

    def _step_error(self, exc: BaseException, stage: str, model: torch.nn.Module, loss_fn: torch.nn.Module) -> StepError:
        """A failed forward or loss as a StepError naming the module that raised (the innermost one)."""
        where = _culprit(exc, self.strategy.unwrap(model), loss_fn) or ("data", "val" if stage == "sanity check"
                                                                        else stage)
        if stage == "sanity check":
            message = f"validation fails in the sanity check, before any training: {_first_line(exc)}"
        else:
            message = f"{stage} fails at epoch {self.current_epoch}, step {self.global_step}: {_first_line(exc)}"
        return StepError(message, where, stage=stage, epoch=self.current_epoch, step=self.global_step)

    def _step_scheduler(self, interval: str) -> None:
        config = self.lr_scheduler
        if config is None or config.interval != interval:
            return
        count = self.global_step if interval == "step" else self.current_epoch + 1
        if count % config.frequency:
            return
        try:
            if isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                value = self.callback_metrics.get(config.monitor)
                if value is not None:  # None until the metric's first logging (e.g. val every N epochs)
                    config.scheduler.step(value)
            else:
                config.scheduler.step()
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            raise StepError(f"the LR scheduler fails at epoch {self.current_epoch}, step {self.global_step}: "
                            f"{_first_line(exc)}", ("scheduler",), stage="train", epoch=self.current_epoch,
                            step=self.global_step) from exc

    # ----------------------------------------------------------------------------------------
    # Plumbing

    def _profile_dir(self) -> Path | None:
        """Where the profiler writes: the run folder (none for a fast_dev_run, which writes nothing)."""
        return None if self.settings.fast_dev_batches else self.root_dir

    def _check_scheduler_monitor(self) -> None:
        config = self.lr_scheduler
        if config is not None and isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            require_metric(self, config.monitor, "ReduceLROnPlateau monitor", ("scheduler", "monitor"))

    def _log_hyperparams(self, *, has_test: bool) -> None:
        names = self.logged_metric_names + (self.stage_metrics["test"].names if has_test else [])
        for logger in self.loggers:
            logger.log_hyperparams(self.hparams, names)

    def _flush_logs(self) -> None:
        if not self._pending_logs:
            return
        row = {"epoch": self.current_epoch, **self._pending_logs}
        self._pending_logs = {}
        self._log_row(row)

    def _log_row(self, row: dict[str, Any]) -> None:
        if self._rows_step != self.global_step:
            self._rows_at_step, self._rows_step = [], self.global_step
        self._rows_at_step.append(row)
        for logger in self.loggers:
            logger.log_metrics(row, self.global_step)

    def _call(self, hook: str, *args: Any) -> None:
        """Call `hook` on each callback that has it (duck typing, as Lightning Fabric does)."""
        model = self.model
        for index, callback in enumerate(self.callbacks):
            method = getattr(callback, hook, None)
            if method is None:
                continue
            try:
                with self.profiler.profile_hook(callback, hook):
                    method(self, model, *args)
            except MisconfigurationError as exc:
                if exc.where[:1] in (("trainer",), ("metrics",), ("scheduler",), ("callbacks",)):
                    raise
                raise exc.located("callbacks", index)


_STEP_ACTIONS = {"train": "training_step", "val": "validation_step", "test": "test_step"}  # the profiler's names


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _culprit(exc: BaseException, model: torch.nn.Module, loss_fn: torch.nn.Module) -> tuple | None:
    """What raised in a forward pass: ("loss",), ("model", name of the innermost module), or None (neither)."""
    names = {id(module): name for name, module in model.named_modules()}
    losses = {id(module) for module in loss_fn.modules()}
    found: tuple | None = None
    frame = exc.__traceback__
    while frame is not None:  # outermost first; the last module seen is the innermost one
        owner = frame.tb_frame.f_locals.get("self")
        if owner is not None and id(owner) in losses:
            return ("loss",)
        if owner is not None and id(owner) in names:
            found = ("model", names[id(owner)])
        frame = frame.tb_next
    return found

