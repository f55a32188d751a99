"""Timer: track the time of the train, validate and test stages, and stop training when the time is up."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any, Literal, Union

from declarative.callbacks.base import Callback

__all__ = ["Timer", "DURATION_SCHEMA"]

STAGES = ("train", "sanity_check", "validate", "test")  # Lightning's RunningStage values this loop has
UNITS = ("weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds")  # timedelta's arguments

DURATION_SCHEMA = {  # if/then/else: a wrong string or mapping gets an error about what is wrong in it
    "if": {"type": "string"},
    "then": {"pattern": r"^\d+:\d{2}:\d{2}:\d{2}$", "x-pattern": 'is not a duration: write "DD:HH:MM:SS"'},
    "else": {"if": {"type": "null"},
             "else": {"type": "object", "minProperties": 1, "additionalProperties": False,
                      "properties": {unit: {"type": "number", "minimum": 0} for unit in UNITS}}},
    "default": None,
    "description": 'When training stops: "DD:HH:MM:SS" or {days, hours, minutes, seconds, ...}; none: only measure.'}


class Timer(Callback):
    """Track the time spent in training, validation and testing; stop training when `duration` is up.

    The elapsed times (seconds; training's whole, the other stages' latest run, as Lightning counts them) are
    printed at the end and written to results.json under ``time_elapsed``; a checkpoint keeps them, so a resumed
    run goes on counting the training time it had (Lightning's Timer).

    Args:
        duration: how long training may run: "DD:HH:MM:SS", or {days, hours, minutes, seconds, ...}; none: no
            limit, the times are only measured. Default: None
        interval: check after each training ``step``, or at each ``epoch``'s end. Default: step
        verbose: say when the time is up, and print the times at the end. Default: True
    """

    def __init__(self, duration: Union[str, dict, None] = None, interval: Literal["step", "epoch"] = "step",
                 verbose: bool = True):
        if isinstance(duration, str):
            match = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", duration.strip())
            if not match:
                raise ValueError(f"duration {duration!r} is not DD:HH:MM:SS, e.g. 00:12:00:00 for 12 hours")
            days, hours, minutes, seconds = (int(part) for part in match.groups())
            duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        elif isinstance(duration, dict):
            duration = timedelta(**duration)
        if interval not in ("step", "epoch"):
            raise ValueError(f"interval must be 'step' or 'epoch', got {interval!r}")
        self._duration = duration.total_seconds() if duration is not None else None
        self._interval = interval
        self._verbose = verbose
        self._start_time: dict[str, float | None] = dict.fromkeys(STAGES)
        self._end_time: dict[str, float | None] = dict.fromkeys(STAGES)
        self._offset = 0.0  # the training time of the run this one resumes

    def start_time(self, stage: str = "train") -> float | None:
        return self._start_time[stage]

    def end_time(self, stage: str = "train") -> float | None:
        return self._end_time[stage]

    def time_elapsed(self, stage: str = "train") -> float:
        """Seconds spent in `stage` (its latest run; training counts the resumed run's too)."""
        start, end = self._start_time[stage], self._end_time[stage]
        offset = self._offset if stage == "train" else 0.0
        if start is None:
            return offset
        return (end if end is not None else time.monotonic()) - start + offset

    def time_remaining(self, stage: str = "train") -> float | None:
        return self._duration - self.time_elapsed(stage) if self._duration is not None else None

    def _start(self, stage: str) -> None:
        self._start_time[stage], self._end_time[stage] = time.monotonic(), None

    def _end(self, stage: str) -> None:
        self._end_time[stage] = time.monotonic()

    def on_fit_start(self, trainer: Any, model: Any) -> None:
        if self._duration is not None:  # a resumed timer may be used up already
            self._check_time_remaining(trainer)

    def on_train_start(self, trainer: Any, model: Any) -> None:
        self._start("train")

    def on_train_end(self, trainer: Any, model: Any) -> None:
        self._end("train")
        if self._verbose:
            trainer.print(f"Timer: training took {_shown(self.time_elapsed('train'))}"
                          + (f"; the last validation run {_shown(self.time_elapsed('validate'))}"
                             if self._start_time["validate"] is not None else ""))

    def on_validation_start(self, trainer: Any, model: Any) -> None:
        self._start("sanity_check" if trainer.sanity_checking else "validate")

    def on_validation_end(self, trainer: Any, model: Any) -> None:
        self._end("sanity_check" if trainer.sanity_checking else "validate")

    def on_test_start(self, trainer: Any, model: Any) -> None:
        self._start("test")

    def on_test_end(self, trainer: Any, model: Any) -> None:
        self._end("test")
        if self._verbose:
            trainer.print(f"Timer: testing took {_shown(self.time_elapsed('test'))}")

    def on_train_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._interval == "step" and self._duration is not None:
            self._check_time_remaining(trainer)

    def on_train_epoch_end(self, trainer: Any, model: Any) -> None:
        if self._interval == "epoch" and self._duration is not None:
            self._check_time_remaining(trainer)

    def _check_time_remaining(self, trainer: Any) -> None:
        # Any process out of time stops them all, at the same step.
        should_stop = trainer.strategy.reduce_any(self.time_elapsed() >= self._duration)
        if should_stop and not trainer.should_stop and self._verbose:
            trainer.print(f"Time limit reached. Elapsed time is {timedelta(seconds=int(self.time_elapsed()))}. "
                          "Signaling Trainer to stop.")
        trainer.should_stop = trainer.should_stop or should_stop

    def state_dict(self) -> dict:
        return {"time_elapsed": {stage: self.time_elapsed(stage) for stage in STAGES}}

    def load_state_dict(self, state_dict: dict) -> None:
        self._offset = state_dict.get("time_elapsed", {}).get("train", 0.0)

    def results(self) -> dict:
        """What results.json keeps: the seconds each stage took."""
        return {"time_elapsed": {stage: round(self.time_elapsed(stage), 6) for stage in STAGES
                                 if self._start_time[stage] is not None or stage == "train"}}


def _shown(seconds: float) -> str:
    return f"{timedelta(seconds=round(seconds))} ({seconds:.2f} s)"
