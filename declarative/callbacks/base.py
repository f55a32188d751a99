"""The callback base class: every hook an empty method, called with the trainer and the model.

Hooks mirror Lightning's (`on_train_epoch_end(trainer, pl_module)` here is
`on_train_epoch_end(trainer, model)`). The trainer calls a hook on every callback that has it,
in list order, so any object with the right method names works: subclassing is optional.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from declarative.training.errors import UnloggedMetricError
from declarative.training.metrics import unlogged_metric

__all__ = ["Callback", "TrainerView", "callback_results", "require_metric"]


class TrainerView(Protocol):
    """What a callback may read and call on the trainer (declarative.training.trainer.Trainer).

    Counters are 0-based; `callback_metrics` holds the latest logged values (floats, and nested
    lists for per-class values and matrices), the same on every process.
    """

    current_epoch: int
    global_step: int
    sanity_checking: bool
    should_stop: bool  # a callback sets it to end fit after this epoch (on a mid-epoch validation: right there)
    log_step_due: bool  # during on_train_batch_end: this step logs its scalars
    num_train_batches: int
    num_val_batches: int
    num_test_batches: int
    callback_metrics: dict[str, Any]
    loggers: list[Any]
    optimizers: list[Any]
    lr_scheduler: Any  # LRSchedulerConfig or None: .scheduler, .interval, .frequency, .monitor
    train_dataloader: Any  # during fit: the training batches (StochasticWeightAveraging's BatchNorm pass)
    settings: Any  # TrainerSettings
    accumulate_grad_batches: int  # batches per optimizer step this epoch (GradientAccumulationScheduler sets it)
    strategy: Any  # root_device, world_size, reduce_any(flag), broadcast(obj), unwrap(model)
    callbacks: list[Any]  # every callback, in the order given (a callback's index locates its errors)
    root_dir: Path  # the run folder
    precision: Any  # the PrecisionPlugin (.name: "32-true", "bf16-mixed", ...)

    @property
    def is_global_zero(self) -> bool: ...

    @property
    def has_validation(self) -> bool: ...

    @property
    def logged_metric_names(self) -> list[str]: ...

    @property
    def checkpoint_dir(self) -> Path: ...

    def log(self, metrics: dict[str, float]) -> None: ...

    def print(self, message: str) -> None: ...

    def save_checkpoint(self, path: str | Path, weights_only: bool = False) -> None: ...

    def link_checkpoint(self, target: str | Path, link: str | Path) -> None: ...

    def remove_checkpoint(self, path: str | Path) -> None: ...


class Callback:
    """Base class for callbacks: override the hooks you need."""

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a checkpoint; unique per configuration."""
        return type(self).__qualname__

    def _generate_state_key(self, **kwargs: Any) -> str:
        """`ModelCheckpoint{'monitor': 'val/loss', 'mode': 'min'}`, as Lightning writes them."""
        return f"{type(self).__qualname__}{kwargs!r}"

    def setup(self, trainer: TrainerView, model: Any, stage: str) -> None:
        """Called when fit or test begins (`stage` is "fit" or "test"), before anything runs."""

    def on_fit_start(self, trainer: TrainerView, model: Any) -> None:
        """Called at the start of fit, before the sanity check."""

    def on_fit_end(self, trainer: TrainerView, model: Any) -> None:
        """Called at the end of fit."""

    def on_sanity_check_start(self, trainer: TrainerView, model: Any) -> None:
        """Called before the sanity validation batches."""

    def on_sanity_check_end(self, trainer: TrainerView, model: Any) -> None:
        """Called after the sanity validation batches."""

    def on_train_start(self, trainer: TrainerView, model: Any) -> None:
        """Called when training begins (after the sanity check)."""

    def on_train_end(self, trainer: TrainerView, model: Any) -> None:
        """Called when training ends."""

    def on_train_epoch_start(self, trainer: TrainerView, model: Any) -> None:
        """Called at the start of each training epoch."""

    def on_train_batch_end(self, trainer: TrainerView, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Called after each training batch; `outputs` is its detached loss (on the device)."""

    def on_train_epoch_end(self, trainer: TrainerView, model: Any) -> None:
        """Called at the end of each training epoch, after that epoch's validation."""

    def on_validation_start(self, trainer: TrainerView, model: Any) -> None:
        """Called before a validation run (also during the sanity check: see `trainer.sanity_checking`)."""

    def on_validation_batch_end(self, trainer: TrainerView, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Called after each validation batch."""

    def on_validation_end(self, trainer: TrainerView, model: Any) -> None:
        """Called after a validation run, with its metrics in `trainer.callback_metrics`."""

    def on_test_start(self, trainer: TrainerView, model: Any) -> None:
        """Called before the test run."""

    def on_test_batch_end(self, trainer: TrainerView, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Called after each test batch."""

    def on_test_end(self, trainer: TrainerView, model: Any) -> None:
        """Called after the test run, with its metrics in `trainer.callback_metrics`."""

    def on_exception(self, trainer: TrainerView, model: Any, exception: BaseException) -> None:
        """Called when fit or test raises (a KeyboardInterrupt included)."""

    def on_save_checkpoint(self, trainer: Any, model: Any, checkpoint: dict) -> None:
        """Called before a checkpoint is written, with its contents: a callback may change what is saved."""

    def state_dict(self) -> dict:
        """What a checkpoint keeps of this callback (plain values only)."""
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what `state_dict` returned."""


def callback_results(callbacks: list[Any]) -> dict[str, Any]:
    """What the callbacks add to results.json: each one's `results()` (Timer's time_elapsed, ...)."""
    out: dict[str, Any] = {}
    for callback in callbacks:
        if hasattr(callback, "results"):
            out.update(callback.results())
    return out


def require_metric(trainer: TrainerView, name: str, what: str, where: tuple = ("monitor",)) -> None:
    """An UnloggedMetricError, before training starts, when `name` is not a metric this run logs.

    `where` names the input at fault: a callback's own argument (the trainer adds which callback),
    or a place of its own such as ("scheduler", "monitor")."""
    problem = unlogged_metric(name, trainer.logged_metric_names, trainer.has_validation, what)
    if problem:
        raise UnloggedMetricError(problem, where)
