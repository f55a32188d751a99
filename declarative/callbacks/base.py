"""The callback base class: every hook an empty method, called with the trainer and the model.

Hooks mirror Lightning's (`on_train_epoch_end(trainer, pl_module)` here is
`on_train_epoch_end(trainer, model)`). The trainer calls a hook on every callback that has it,
in list order, so any object with the right method names works: subclassing is optional.
"""

from __future__ import annotations

from typing import Any

from declarative.training.metrics import unlogged_metric

__all__ = ["Callback", "require_metric"]


class Callback:
    """Base class for callbacks: override the hooks you need."""

    spec_path: tuple = ()  # where the spec lists this callback; set by the builder, for located errors

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a checkpoint; unique per configuration."""
        return type(self).__qualname__

    def _generate_state_key(self, **kwargs: Any) -> str:
        """`ModelCheckpoint{'monitor': 'val/loss', 'mode': 'min'}`, as Lightning writes them."""
        return f"{type(self).__qualname__}{kwargs!r}"

    def setup(self, trainer: Any, model: Any, stage: str) -> None:
        """Called when fit or test begins (`stage` is "fit" or "test"), before anything runs."""

    def on_fit_start(self, trainer: Any, model: Any) -> None:
        """Called at the start of fit, before the sanity check."""

    def on_fit_end(self, trainer: Any, model: Any) -> None:
        """Called at the end of fit."""

    def on_sanity_check_start(self, trainer: Any, model: Any) -> None:
        """Called before the sanity validation batches."""

    def on_sanity_check_end(self, trainer: Any, model: Any) -> None:
        """Called after the sanity validation batches."""

    def on_train_start(self, trainer: Any, model: Any) -> None:
        """Called when training begins (after the sanity check)."""

    def on_train_end(self, trainer: Any, model: Any) -> None:
        """Called when training ends."""

    def on_train_epoch_start(self, trainer: Any, model: Any) -> None:
        """Called at the start of each training epoch."""

    def on_train_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Called after each training batch; `outputs` is its detached loss (on the device)."""

    def on_train_epoch_end(self, trainer: Any, model: Any) -> None:
        """Called at the end of each training epoch, after that epoch's validation."""

    def on_validation_start(self, trainer: Any, model: Any) -> None:
        """Called before a validation run (also during the sanity check: see `trainer.sanity_checking`)."""

    def on_validation_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Called after each validation batch."""

    def on_validation_end(self, trainer: Any, model: Any) -> None:
        """Called after a validation run, with its metrics in `trainer.callback_metrics`."""

    def on_test_start(self, trainer: Any, model: Any) -> None:
        """Called before the test run."""

    def on_test_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Called after each test batch."""

    def on_test_end(self, trainer: Any, model: Any) -> None:
        """Called after the test run, with its metrics in `trainer.callback_metrics`."""

    def on_exception(self, trainer: Any, model: Any, exception: BaseException) -> None:
        """Called when fit or test raises (a KeyboardInterrupt included)."""

    def on_save_checkpoint(self, trainer: Any, model: Any, checkpoint: dict) -> None:
        """Called before a checkpoint is written, with its contents: a callback may change what is saved."""

    def state_dict(self) -> dict:
        """What a checkpoint keeps of this callback (plain values only)."""
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what `state_dict` returned."""


def require_metric(trainer: Any, name: str, path: tuple, what: str) -> None:
    """A located error, before training starts, when `name` is not a metric this run logs."""
    problem = unlogged_metric(name, trainer.logged_metric_names, trainer.has_validation, what)
    if problem:
        spec = trainer.spec
        if spec.task and not spec.task_written and not spec.metrics_written:  # the metrics follow an inferred task
            origin = "its loss" if spec.loss_written else "the data"
            problem += f"; this run's task is {spec.task}, inferred from {origin} — name another with task:"
        raise spec.error(path, problem)
