"""LearningRateFinder: Lightning's LR range test, run before training, and the rate it suggests.

    callbacks:
      - LearningRateFinder                         # 100 steps, LR from 1e-8 up to 1, exponentially
      - LearningRateFinder: {min_lr: 1.0e-6, max_lr: 0.1, num_training_steps: 50, mode: linear}

Before the fit (where Lightning's callback runs, at fit start, before the sanity check) the model trains
on the training batches while the learning rate rises from `min_lr` to `max_lr`; the loss of each step,
smoothed, is recorded against its rate. Then weights, optimizer, generators and data position go back
to what they were, and the rate where the loss falls fastest becomes the run's learning rate
(`update_attr`). This module holds the callback's settings, the curve and the suggestion;
declarative/assembly/tuning.py runs the test.
"""

from __future__ import annotations

import csv
import math
from typing import Any, Literal, Optional

import torch

from declarative.callbacks.base import Callback

__all__ = ["LearningRateFinder", "LRCurve", "suggestion", "CURVE_FILE"]

CURVE_FILE = "lr_find.csv"


class LearningRateFinder(Callback):
    """Find a good initial learning rate with an LR range test before training, and train with it.

    Args:
        min_lr: The learning rate the test starts from. Default: 1e-08
        max_lr: The learning rate the test ends at. Default: 1
        num_training_steps: Optimizer steps of the test (learning rates tried). Default: 100
        mode: How the rate rises step by step: ``exponential`` or ``linear``. Default: exponential
        early_stop_threshold: Stop the test when the smoothed loss exceeds this many times the best one
            so far; none: never. Default: 4.0
        update_attr: Train with the suggested rate: it becomes the optimizer's ``lr`` (param groups with
            rates of their own keep their ratio to it) and OneCycleLR's ``max_lr``; false only reports it.
            Default: True
        attr_name: Which rate the suggestion sets: empty, ``lr`` or ``learning_rate`` all name the
            optimizer's ``lr``. Default: ""
    """

    def __init__(self, min_lr: float = 1e-8, max_lr: float = 1, num_training_steps: int = 100,
                 mode: Literal["exponential", "linear"] = "exponential", early_stop_threshold: Optional[float] = 4.0,
                 update_attr: bool = True, attr_name: Literal["", "lr", "learning_rate"] = ""):
        if mode not in ("exponential", "linear"):
            raise ValueError(f"mode must be 'exponential' or 'linear', but got mode={mode!r}")
        if not 0 < min_lr < max_lr:
            raise ValueError(f"the range test needs 0 < min_lr < max_lr, but got min_lr={min_lr}, max_lr={max_lr}")
        if num_training_steps < 1:
            raise ValueError(f"num_training_steps must be 1 or more, but got {num_training_steps}")
        self.min_lr = float(min_lr)
        self.max_lr = float(max_lr)
        self.num_training_steps = num_training_steps
        self.mode = mode
        self.early_stop_threshold = early_stop_threshold
        self.update_attr = update_attr
        self.attr_name = attr_name
        self.curve: LRCurve | None = None  # the test's (lr, smoothed loss) points, once it ran in this process
        self.result: dict[str, Any] = {}  # what it suggested and applied: results.json's "tuned" → "lr"

    def lr_at(self, step: int) -> float:
        """The rate of the test's `step` (0-based), as Lightning's schedulers give it: `min_lr` at step 0, then
        step k's rate is (k + 1) / num_training_steps of the way to `max_lr` (reached at the last step)."""
        if step == 0:
            return self.min_lr
        fraction = (step + 1) / self.num_training_steps
        if self.mode == "linear":
            return self.min_lr + fraction * (self.max_lr - self.min_lr)
        return self.min_lr * (self.max_lr / self.min_lr) ** fraction

    def setup(self, trainer: Any, model: Any, stage: str) -> None:
        """The curve goes into the run folder, which exists once fit begins."""
        if stage == "fit" and self.curve is not None and trainer.is_global_zero and self.result.get("curve"):
            self.curve.write(trainer.root_dir / self.result["curve"])

    def state_dict(self) -> dict:
        return {"result": dict(self.result)} if self.result else {}

    def load_state_dict(self, state_dict: dict) -> None:
        self.result = dict(state_dict.get("result", {}))


class LRCurve:
    """The range test's record, step by step: the rate used and the smoothed loss after it.

    The smoothing and the early stop are Lightning's: a running average of the step losses with `beta`
    0.98, bias-corrected by ``1 - beta ** (step + 1)`` (step counted from 1), and a stop once a step's
    smoothed loss exceeds `early_stop_threshold` times the best before it (from the second step on). A
    loss that is not finite stops the test too: every smoothed value after it would be NaN.
    """

    def __init__(self, early_stop_threshold: float | None, beta: float = 0.98):
        self.early_stop_threshold = early_stop_threshold
        self.beta = beta
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self._average = 0.0
        self._best = 0.0

    def add(self, lr: float, loss: float) -> bool:
        """Record one step; True when the test should stop here."""
        step = len(self.losses) + 1
        self._average = self.beta * self._average + (1 - self.beta) * loss
        smoothed = self._average / (1 - self.beta ** (step + 1))
        diverged = (self.early_stop_threshold is not None and step > 1
                    and smoothed > self.early_stop_threshold * self._best)
        if smoothed < self._best or step == 1:
            self._best = smoothed
        self.lrs.append(lr)
        self.losses.append(smoothed)
        return diverged or not math.isfinite(smoothed)

    def write(self, path: Any) -> None:
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["step", "lr", "loss"])
            writer.writerows((step, repr(lr), repr(loss)) for step, (lr, loss) in enumerate(zip(self.lrs, self.losses)))


def suggestion(lrs: list[float], losses: list[float], skip_begin: int = 10, skip_end: int = 1) -> int | None:
    """The index of the point where the loss falls fastest against the rate (Lightning's `suggestion()`:
    the steepest negative gradient, leaving out `skip_begin` points at the start and `skip_end` at the end,
    and the non-finite ones); None when fewer than two points are left."""
    kept = slice(skip_begin, -skip_end if skip_end else None)
    points = torch.tensor(losses[kept])  # float32, as Lightning computes it
    rates = torch.tensor(lrs[kept])
    finite = torch.isfinite(points)
    points, rates = points[finite], rates[finite]
    if len(points) < 2:
        return None
    gradients = torch.gradient(points, spacing=[rates])[0]
    indices = torch.arange(len(losses))[kept][finite]
    return int(indices[torch.argmin(gradients)])
