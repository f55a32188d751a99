"""LearningRateMonitor: log each optimizer's learning rate."""

from __future__ import annotations

from typing import Any, Literal

from declarative.callbacks.base import Callback
from declarative.training.errors import MisconfigurationError

__all__ = ["LearningRateMonitor"]


class LearningRateMonitor(Callback):
    """Log the learning rate as ``lr-<Optimizer>`` (``lr-<Optimizer>/pg<N>`` for several param groups).

    Args:
        logging_interval: ``step`` logs every ``log_every_n_steps`` optimizer steps, ``epoch`` at each
            epoch's start; unset follows the LR scheduler's interval (``step`` without one). Default: None
    """

    def __init__(self, logging_interval: Literal["step", "epoch"] | None = None):
        if logging_interval not in (None, "step", "epoch"):
            raise ValueError(f"logging_interval must be one of {{'step', 'epoch', None}}, "
                             f"but got logging_interval={logging_interval!r}")
        self.logging_interval = logging_interval

    def setup(self, trainer: Any, model: Any, stage: str) -> None:
        if stage == "fit" and not trainer.loggers and trainer.is_global_zero:  # only process 0 logs
            raise MisconfigurationError("LearningRateMonitor needs a logger, but this run has none — remove "
                                        "`logger: false` or this callback")

    def _interval(self, trainer: Any) -> str:
        if self.logging_interval is not None:
            return self.logging_interval
        config = trainer.lr_scheduler
        return config.interval if config is not None else "step"

    def on_train_epoch_start(self, trainer: Any, model: Any) -> None:
        if self._interval(trainer) == "epoch":
            trainer.log(self.learning_rates(trainer))

    def on_train_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        # After the optimizer step and before the scheduler's: the rate this step used.
        if trainer.log_step_due and self._interval(trainer) == "step":
            trainer.log(self.learning_rates(trainer))

    @staticmethod
    def learning_rates(trainer: Any) -> dict[str, float]:
        rates = {}
        for optimizer in trainer.optimizers:
            name = f"lr-{type(optimizer).__name__}"
            groups = optimizer.param_groups
            if len(groups) == 1:
                rates[name] = float(groups[0]["lr"])
            else:
                rates.update({f"{name}/pg{i + 1}": float(g["lr"]) for i, g in enumerate(groups)})
        return rates
