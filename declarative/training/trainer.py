"""The training loop: Lightning's `fit` and `test`, driven by a spec's trainer settings.

    fit:  sanity validation → for each epoch: train batches (accumulate, clip, step, schedule)
          → epoch metrics → validation (every check_val_every_n_epoch) → callbacks → scheduler
    test: one pass over the test split

Fast by default: losses and metrics accumulate on the device, and the host reads them only
when it logs (every `log_every_n_steps` optimizer steps, and once per epoch); evaluation runs
under `torch.inference_mode()`.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import torch
from rich.console import Console

from declarative.callbacks.base import require_metric
from declarative.callbacks.model_checkpoint import ModelCheckpoint
from declarative.spec.config import Component, Spec
from declarative.training.accelerator import Accelerator
from declarative.training.checkpoint import checkpoint_contents, load_checkpoint, save_checkpoint
from declarative.training.metrics import METRICS, MetricInputError, StageMetrics, duplicate_metrics, metric_log_name
from declarative.training.precision import Precision

__all__ = ["Batches", "DataSplits", "Trainer", "limit_batches", "estimated_stepping_batches"]


class Batches(Protocol):
    """One split's batches: `(inputs, targets)` pairs already on the device."""

    def __iter__(self) -> Iterator[tuple[Any, Any]]: ...

    def __len__(self) -> int: ...


class DataSplits(Protocol):
    """What `build_data` returns; `val` and `test` are None when the spec has no such split."""

    train: Batches
    val: Batches | None
    test: Batches | None


def limit_batches(spec: Spec, total: int, setting: str) -> int:
    """Batches a stage runs: `limit_*_batches` as a count (int) or a fraction of `total` (float)."""
    limit = getattr(spec.trainer, setting)
    if isinstance(limit, int) and not isinstance(limit, bool):
        return min(total, limit)
    if limit > 1.0:
        raise spec.error(("trainer", setting), f"{setting}={limit} is a fraction above 1.0 — write a fraction "
                                               f"up to 1.0, or an integer for a count of batches")
    count = int(total * limit)
    if limit > 0 and total > 0 and count == 0:
        raise spec.error(("trainer", setting), f"{setting}={limit} of {total} batches is less than one batch — "
                                               "raise the fraction, or give a count such as 1")
    return count


def estimated_stepping_batches(spec: Spec, num_train_batches: int) -> int | float:
    """Optimizer steps the whole fit will take (math.inf when no limit bounds it), as Lightning estimates them."""
    settings = spec.trainer
    per_epoch = math.ceil(num_train_batches / settings.accumulate_grad_batches)
    epochs = settings.epochs_limit
    total = per_epoch * epochs if epochs is not None else math.inf
    return min(total, settings.max_steps) if settings.max_steps is not None else total


def _culprit(exc: BaseException, model: torch.nn.Module, loss_fn: torch.nn.Module) -> tuple:
    """The spec section to blame for a failed forward: the loss, the model, or else the data."""
    frame = exc.__traceback__
    while frame is not None:  # outermost first: the module whose call raised
        owner = frame.tb_frame.f_locals.get("self")
        if owner is loss_fn:
            return ("loss",)
        if owner is model:
            return ("model", "layers")
        frame = frame.tb_next
    return ("data", "val")


class Trainer:
    """Fits and tests a model as the spec's `trainer` section says, with Lightning's loop and names.

    Args:
        spec: the typed spec: trainer settings, metric names, and where to point located errors.
        accelerator: the device (batches arrive on it; `prepare` moves the model there).
        precision: autocast, loss scaling and dtype conversion.
        callbacks: called in order at each hook; any object with the hook's method name works.
        loggers: every logged scalar goes to each of them (settable until `fit`).
        root_dir: the run directory; ModelCheckpoint's default folder is `root_dir/checkpoints`
            (settable until `fit`; default: the working directory).
        console: where messages and the progress bar go.
    """

    def __init__(
        self,
        spec: Spec,
        *,
        accelerator: Accelerator,
        precision: Precision,
        callbacks: Sequence[Any] = (),
        loggers: Sequence[Any] = (),
        root_dir: str | Path | None = None,
        console: Console | None = None,
    ):
        self.spec = spec
        self.settings = spec.trainer
        self.accelerator = accelerator
        self.device = accelerator.device
        self.precision = precision
        self.console = console or Console()
        self.loggers = list(loggers)
        self.root_dir = Path(root_dir) if root_dir is not None else Path.cwd()
        self.callbacks = list(callbacks)
        if self.settings.enable_progress_bar:
            from declarative.training.progress import ProgressBar

            self.callbacks.append(ProgressBar(self.console))  # last: it shows what the others logged
        self.stage_metrics = {stage: self._build_metrics(stage) for stage in ("train", "val", "test")}

        self.model: torch.nn.Module | None = None
        self.optimizers: list[torch.optim.Optimizer] = []
        self.scheduler: Any = None
        self.scheduler_config = spec.scheduler
        self.current_epoch = 0
        self.global_step = 0
        self.should_stop = False
        self.sanity_checking = False
        self.log_step_due = False  # True during on_train_batch_end of a batch that logs step scalars
        self.num_train_batches = 0
        self.num_val_batches = 0
        self.num_test_batches = 0
        # Floats, and nested lists for per-class values and confusion matrices (see StageMetrics).
        self.callback_metrics: dict[str, Any] = {}
        self.val_metrics: dict[str, Any] = {}
        self.test_metrics: dict[str, Any] = {}
        self._pending_logs: dict[str, float] = {}

    # ----------------------------------------------------------------------------------------
    # What callbacks read

    @property
    def has_validation(self) -> bool:
        return self.num_val_batches > 0

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
        """The best checkpoint of the first ModelCheckpoint with a monitor (what Lightning's ckpt_path="best" means)."""
        for callback in self.checkpoint_callbacks:
            if callback.monitor is not None and callback.best_model_path:
                return callback.best_model_path
        return None

    @property
    def max_steps_reached(self) -> bool:
        return self.settings.max_steps is not None and self.global_step >= self.settings.max_steps

    def log(self, metrics: dict[str, float]) -> None:
        """Queue scalars; the loggers get them together, at the current step."""
        self._pending_logs.update(metrics)
        self.callback_metrics.update(metrics)

    def print(self, message: str) -> None:
        """A message for the user (above the progress bar when one is live)."""
        self.console.print(message, markup=False, highlight=False)

    def save_checkpoint(self, path: str | Path) -> None:
        """Save the run's state (weights, optimizer and scheduler, counters, metrics, callbacks) to `path`."""
        assert self.model is not None, "save_checkpoint needs a model: call it during fit"
        contents = checkpoint_contents(
            self.spec, self.model,
            optimizers=self.optimizers,
            lr_schedulers=[self.scheduler] if self.scheduler is not None else [],
            epoch=self.current_epoch,
            global_step=self.global_step,
            metrics=self.callback_metrics,
            callbacks=self._callback_states(),
        )
        self._call("on_save_checkpoint", contents)  # Lightning's hook: a callback may change what is saved
        save_checkpoint(contents, path)

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

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module on the device, in the run's precision; call it before building the optimizer."""
        return self.precision.convert_module(module.to(self.device))

    def fit(
        self,
        model: torch.nn.Module,
        loss_fn: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        data: DataSplits,
        scheduler: Any = None,
    ) -> None:
        """Sanity-check validation, then train (and validate) until a limit or a callback stops it."""
        self.model, self.optimizers, self.scheduler = model, [optimizer], scheduler
        self.train_dataloader = data.train  # Lightning's name; StochasticWeightAveraging's BatchNorm pass reads it
        self.num_train_batches = limit_batches(self.spec, len(data.train), "limit_train_batches")
        self.num_val_batches = (limit_batches(self.spec, len(data.val), "limit_val_batches")
                                if data.val is not None else 0)
        self._check_scheduler_monitor()
        self._call("setup", "fit")
        try:
            self._log_hyperparams(has_test=data.test is not None)
            self._call("on_fit_start")
            self._sanity_check(model, loss_fn, data.val)
            self._call("on_train_start")
            parameters = [p for group in optimizer.param_groups for p in group["params"]]
            while not self._fit_done():
                self._run_epoch(model, loss_fn, optimizer, parameters, data)
            self._call("on_train_end")
            self._call("on_fit_end")
        except BaseException as exc:
            self._call("on_exception", exc)
            raise

    def test(
        self,
        model: torch.nn.Module,
        loss_fn: torch.nn.Module,
        batches: Batches,
        *,
        ckpt_path: str | Path | None = None,
    ) -> dict[str, float]:
        """Run the test split once (with the weights of `ckpt_path`, when given) and log `test/*`."""
        if ckpt_path is not None:
            model.load_state_dict(load_checkpoint(ckpt_path)["state_dict"])
        self.model = model
        self.num_test_batches = limit_batches(self.spec, len(batches), "limit_test_batches")
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
        return self.test_metrics

    def finalize(self, status: str) -> None:
        """Flush and close the loggers."""
        for logger in self.loggers:
            logger.finalize(status)

    # ----------------------------------------------------------------------------------------
    # The loop

    def _fit_done(self) -> bool:
        if self.should_stop or self.max_steps_reached or self.num_train_batches == 0:
            return True
        limit = self.settings.epochs_limit
        return limit is not None and self.current_epoch >= limit

    def _sanity_check(self, model: torch.nn.Module, loss_fn: torch.nn.Module, batches: Batches | None) -> None:
        """A few validation batches before training, so a broken validation fails in seconds, not after an epoch."""
        count = min(self.settings.num_sanity_val_steps, self.num_val_batches)
        if batches is None or count == 0:
            return
        self.sanity_checking = True
        self._call("on_sanity_check_start")
        self._call("on_validation_start")
        try:
            self._evaluate("val", model, loss_fn, batches, count)  # results are not logged
        except (RuntimeError, ValueError, IndexError) as exc:
            if isinstance(exc, torch.OutOfMemoryError):
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise self.spec.error(_culprit(exc, model, loss_fn), "validation fails in the sanity check, before any "
                                                                 f"training: {first}") from exc
        self._call("on_validation_end")
        self._call("on_sanity_check_end")
        self.sanity_checking = False

    def _run_epoch(self, model: torch.nn.Module, loss_fn: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   parameters: list[torch.Tensor], data: DataSplits) -> None:
        if hasattr(data.train, "set_epoch"):
            data.train.set_epoch(self.current_epoch)  # reshuffle, seeded per epoch
        self._call("on_train_epoch_start")
        self._flush_logs()
        batches_run = self._train_epoch(model, loss_fn, optimizer, parameters, data.train)
        if batches_run:
            self.log(self.stage_metrics["train"].compute())
        if data.val is not None and self._validation_due():
            self._validate(model, loss_fn, data.val)
        self._call("on_train_epoch_end")
        self._flush_logs()
        self._step_scheduler("epoch")
        self.current_epoch += 1

    def _train_epoch(self, model: torch.nn.Module, loss_fn: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     parameters: list[torch.Tensor], batches: Batches) -> int:
        """One pass over the training batches; the number of batches it ran."""
        model.train()
        metrics = self.stage_metrics["train"]
        metrics.reset(self.device)
        accumulate = self.settings.accumulate_grad_batches
        step_loss, micro_batches, batch_idx = None, 0, -1
        for batch_idx, batch in enumerate(itertools.islice(batches, self.num_train_batches)):
            inputs, targets = self.precision.convert_input(batch)
            with self.precision.forward_context():
                outputs = model(inputs)
                loss = loss_fn(outputs, targets)
            self.precision.backward(loss / accumulate if accumulate > 1 else loss)
            loss = loss.detach()
            self._update_metrics(metrics, loss, outputs.detach(), targets)
            step_loss = loss if step_loss is None else step_loss + loss
            micro_batches += 1
            stepped = (batch_idx + 1) % accumulate == 0 or batch_idx + 1 == self.num_train_batches
            if stepped:
                self._optimizer_step(optimizer, parameters)
                self.global_step += 1
                if self.global_step % self.settings.log_every_n_steps == 0:
                    self.log_step_due = True
                    # The one per-step host sync, and only on logging steps.
                    self.log({"train/loss_step": (step_loss / micro_batches).item()})
                step_loss, micro_batches = None, 0
            self._call("on_train_batch_end", loss, batch, batch_idx)
            if stepped:
                self._flush_logs()
                self.log_step_due = False
                self._step_scheduler("step")  # after the batch hooks, so they see the rate this step used
                if self.max_steps_reached:
                    break
        return batch_idx + 1

    def _optimizer_step(self, optimizer: torch.optim.Optimizer, parameters: list[torch.Tensor]) -> None:
        clip = self.settings.gradient_clip_val
        if clip:  # None or 0: no clipping, as in Lightning
            self.precision.unscale_gradients(optimizer)
            if self.settings.gradient_clip_algorithm == "norm":
                torch.nn.utils.clip_grad_norm_(parameters, clip)
            else:
                torch.nn.utils.clip_grad_value_(parameters, clip)
        self.precision.optimizer_step(optimizer)
        optimizer.zero_grad(set_to_none=True)

    def _validation_due(self) -> bool:
        return self.has_validation and (self.current_epoch + 1) % self.settings.check_val_every_n_epoch == 0

    def _validate(self, model: torch.nn.Module, loss_fn: torch.nn.Module, batches: Batches) -> None:
        self._call("on_validation_start")
        self.val_metrics = self._evaluate("val", model, loss_fn, batches, self.num_val_batches)
        self.log(self.val_metrics)
        self._call("on_validation_end")

    def _evaluate(self, stage: str, model: torch.nn.Module, loss_fn: torch.nn.Module, batches: Batches,
                  count: int) -> dict[str, float]:
        """Loss and metrics over `count` batches, in eval mode, under inference_mode."""
        if count == 0:
            return {}
        metrics = self.stage_metrics[stage]
        hook = "on_validation_batch_end" if stage == "val" else f"on_{stage}_batch_end"
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            metrics.reset(self.device)  # inside inference_mode: the state is updated by inference tensors
            for batch_idx, batch in enumerate(itertools.islice(batches, count)):
                inputs, targets = self.precision.convert_input(batch)
                with self.precision.forward_context():
                    outputs = model(inputs)
                    loss = loss_fn(outputs, targets)
                self._update_metrics(metrics, loss, outputs, targets)
                self._call(hook, loss, batch, batch_idx)
            values = metrics.compute()
        model.train(was_training)
        return values

    def _update_metrics(self, metrics: StageMetrics, loss: torch.Tensor, outputs: torch.Tensor, targets: Any) -> None:
        try:
            metrics.update(loss, outputs, targets)
        except MetricInputError as exc:
            raise self.spec.error(("metrics", exc.index), str(exc)) from None

    def _step_scheduler(self, interval: str) -> None:
        config, scheduler = self.scheduler_config, self.scheduler
        if scheduler is None or config is None or config.interval != interval:
            return
        count = self.global_step if interval == "step" else self.current_epoch + 1
        if count % config.frequency:
            return
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            value = self.callback_metrics.get(config.monitor)
            if value is not None:  # None until the metric's first logging (e.g. val every N epochs)
                scheduler.step(value)
        else:
            scheduler.step()

    # ----------------------------------------------------------------------------------------
    # Plumbing

    def _build_metrics(self, stage: str) -> StageMetrics:
        items = self.spec.metrics or []
        for index, name in duplicate_metrics(items):
            raise self.spec.error(("metrics", index), f"metric '{name}' is listed twice")
        task = self.spec.task or "multiclass"
        return StageMetrics(stage, {metric_log_name(item): METRICS.build_component(
            Component.parse(item, ("metrics", i)), self.spec, task=task) for i, item in enumerate(items)})

    def _check_scheduler_monitor(self) -> None:
        config = self.scheduler_config
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and config is not None:
            require_metric(self, config.monitor, ("scheduler", "monitor"), "ReduceLROnPlateau monitor")

    def _log_hyperparams(self, *, has_test: bool) -> None:
        names = self.logged_metric_names + (self.stage_metrics["test"].names if has_test else [])
        params = self.spec.to_dict()
        for logger in self.loggers:
            logger.log_hyperparams(params, names)

    def _flush_logs(self) -> None:
        if not self._pending_logs:
            return
        row = {"epoch": self.current_epoch, **self._pending_logs}
        self._pending_logs = {}
        for logger in self.loggers:
            logger.log_metrics(row, self.global_step)

    def _call(self, hook: str, *args: Any) -> None:
        """Call `hook` on each callback that has it (duck typing, as Lightning Fabric does)."""
        model = self.model
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is None:
                continue
            method(self, model, *args)
