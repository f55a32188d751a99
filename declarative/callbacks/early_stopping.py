"""EarlyStopping: stop training when a monitored metric has stopped improving."""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

from declarative.callbacks.base import Callback, require_metric
from declarative.training.errors import UnloggedMetricError

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """Stop training when a monitored metric has stopped improving, as Lightning's EarlyStopping.

    Checked after each validation run (after each training epoch when there is no validation, or with
    `check_on_train_epoch_end`).

    Args:
        monitor: the metric to watch, e.g. ``val/loss``.
        mode: ``min`` stops when it stops decreasing, ``max`` when it stops increasing. Default: min
        patience: checks with no improvement after which training stops. Default: 3
        min_delta: a change smaller than this is no improvement. Default: 0.0
        check_finite: stop at once when the metric becomes NaN or infinite. Default: True
        stopping_threshold: stop at once when the metric reaches this value (good enough). Default: None
        divergence_threshold: stop at once when the metric is worse than this value (diverging). Default: None
        check_on_train_epoch_end: check at the end of each training epoch, after its validation, rather than
            after each validation run. Default: None (only when there is no validation)
        verbose: say each improvement. Default: False
        strict: a monitor the run never logs is an error before training; false: never stop on it. Default: True
    """

    def __init__(self, monitor: str, mode: Literal["min", "max"] = "min", patience: int = 3,
                 min_delta: float = 0.0, check_finite: bool = True, stopping_threshold: Optional[float] = None,
                 divergence_threshold: Optional[float] = None, check_on_train_epoch_end: Optional[bool] = None,
                 verbose: bool = False, strict: bool = True):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be one of {{'min', 'max'}}, but got mode={mode!r}")
        if patience < 0:
            raise ValueError(f"patience must be 0 or more, but got patience={patience}")
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = abs(min_delta)
        self.check_finite = check_finite
        self.stopping_threshold = stopping_threshold
        self.divergence_threshold = divergence_threshold
        self.check_on_train_epoch_end = check_on_train_epoch_end
        self.verbose = verbose
        self.strict = strict
        self.wait_count = 0
        self.stopped_epoch = 0
        self.best_score = math.inf if mode == "min" else -math.inf
        self.stopping_reason: str | None = None
        self._active = True

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor, mode=self.mode)

    def setup(self, trainer: Any, model: Any, stage: str) -> None:
        if stage != "fit":
            return
        try:
            require_metric(trainer, self.monitor, "EarlyStopping monitor", ("monitor",))
        except UnloggedMetricError as exc:
            if self.strict:
                raise
            self._active = False  # Lightning's strict=False: a missing metric never stops the run
            trainer.print(f"note: {exc.message}; with strict: false, EarlyStopping will not stop the run")

    def _on_epoch_end(self, trainer: Any) -> bool:
        if self.check_on_train_epoch_end is not None:
            return self.check_on_train_epoch_end
        return not trainer.has_validation

    def on_validation_end(self, trainer: Any, model: Any) -> None:
        if not trainer.sanity_checking and not self._on_epoch_end(trainer):
            self._check(trainer)

    def on_train_epoch_end(self, trainer: Any, model: Any) -> None:
        if self._on_epoch_end(trainer):
            self._check(trainer)

    def _check(self, trainer: Any) -> None:
        if not self._active or self.monitor not in trainer.callback_metrics:
            return
        current = trainer.callback_metrics[self.monitor]
        should_stop, reason = self._evaluate(current)
        if should_stop:
            trainer.should_stop = True
            self.stopped_epoch = trainer.current_epoch
            self.stopping_reason = reason
            trainer.print(reason)
        elif reason and self.verbose:
            trainer.print(reason)

    def _improved(self, current: float) -> bool:
        if self.mode == "min":
            return current < self.best_score - self.min_delta
        return current > self.best_score + self.min_delta

    def _better_than(self, current: float, threshold: float) -> bool:
        return current < threshold if self.mode == "min" else current > threshold

    def _evaluate(self, current: float) -> tuple[bool, str | None]:
        """Lightning's order: not finite, stopping threshold, divergence threshold, improvement, patience."""
        if self.check_finite and not math.isfinite(current):
            return True, (f"Monitored metric {self.monitor} = {current} is not finite. "
                          f"Previous best value was {self.best_score:.3f}. Signaling Trainer to stop.")
        if self.stopping_threshold is not None and self._better_than(current, self.stopping_threshold):
            return True, (f"Stopping threshold reached: {self.monitor} = {current} "
                          f"{'<' if self.mode == 'min' else '>'} {self.stopping_threshold}. Signaling Trainer to stop.")
        if self.divergence_threshold is not None and self._better_than(self.divergence_threshold, current):
            return True, (f"Divergence threshold reached: {self.monitor} = {current} "
                          f"{'>' if self.mode == 'min' else '<'} {self.divergence_threshold}. Signaling Trainer to stop.")
        if self._improved(current):
            improvement = (f"Metric {self.monitor} improved. New best score: {current:.3f}" if math.isinf(self.best_score)
                           else f"Metric {self.monitor} improved by {abs(self.best_score - current):.3f} >= "
                                f"min_delta = {self.min_delta}. New best score: {current:.3f}")
            self.best_score = current
            self.wait_count = 0
            return False, improvement
        self.wait_count += 1
        if self.wait_count >= self.patience:
            return True, (f"Monitored metric {self.monitor} did not improve in the last {self.wait_count} records. "
                          f"Best score: {self.best_score:.3f}. Signaling Trainer to stop.")
        return False, None

    def state_dict(self) -> dict:
        return {"wait_count": self.wait_count, "stopped_epoch": self.stopped_epoch,
                "best_score": self.best_score, "patience": self.patience}

    def load_state_dict(self, state_dict: dict) -> None:
        self.wait_count = state_dict["wait_count"]
        self.stopped_epoch = state_dict["stopped_epoch"]
        self.best_score = state_dict["best_score"]
        self.patience = state_dict["patience"]
