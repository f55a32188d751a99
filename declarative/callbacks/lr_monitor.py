"""LearningRateMonitor: log each optimizer's learning rate (and, when asked, its momentum and weight decay)."""

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
        log_momentum: also log ``momentum-<Optimizer>``: SGD's momentum, or beta1 of Adam-like optimizers.
            Default: False
        log_weight_decay: also log ``weight_decay-<Optimizer>``. Default: False
    """

    def __init__(self, logging_interval: Literal["step", "epoch"] | None = None, log_momentum: bool = False,
                 log_weight_decay: bool = False):
        if logging_interval not in (None, "step", "epoch"):
            raise ValueError(f"logging_interval must be one of {{'step', 'epoch', None}}, "
                             f"but got logging_interval={logging_interval!r}")
        self.logging_interval = logging_interval
        self.log_momentum = log_momentum
        self.log_weight_decay = log_weight_decay

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
            trainer.log(self._values(trainer))

    def on_train_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        # After the optimizer step and before the scheduler's: the rate this step used.
        if trainer.log_step_due and self._interval(trainer) == "step":
            trainer.log(self._values(trainer))

    def _values(self, trainer: Any) -> dict[str, float]:
        values = self.learning_rates(trainer)
        if self.log_momentum:
            values.update(_per_group(trainer, "momentum", _momentum))
        if self.log_weight_decay:
            values.update(_per_group(trainer, "weight_decay", lambda group: group.get("weight_decay", 0.0)))
        return values

    @staticmethod
    def learning_rates(trainer: Any) -> dict[str, float]:
        return _per_group(trainer, "lr", lambda group: group["lr"])


def _momentum(group: dict) -> float:
    """SGD's (and RMSprop's) momentum, else beta1 (Adam, AdamW, ...); 0 for optimizers with neither."""
    if "momentum" in group:
        return group["momentum"]
    betas = group.get("betas")
    return betas[0] if betas else 0.0


def _per_group(trainer: Any, prefix: str, read) -> dict[str, float]:
    """`<prefix>-<Optimizer>`, or `<prefix>-<Optimizer>/pg<N>` for several param groups, as Lightning names them."""
    values = {}
    for optimizer in trainer.optimizers:
        name = f"{prefix}-{type(optimizer).__name__}"
        groups = optimizer.param_groups
        if len(groups) == 1:
            values[name] = float(read(groups[0]))
        else:
            values.update({f"{name}/pg{i + 1}": float(read(g)) for i, g in enumerate(groups)})
    return values
