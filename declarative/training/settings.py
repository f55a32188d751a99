"""The Trainer's settings: Lightning's Trainer arguments that shape the loop, as a plain dataclass.

The spec's `trainer:` section (`TrainerConfig`, in the spec package) is this dataclass plus
what the assembly resolves before a Trainer exists (accelerator, devices, strategy, precision,
where runs go). Each field's metadata holds its one-line doc and numeric bounds; the spec's JSON
Schema is generated from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Union

__all__ = ["TrainerSettings", "setting", "MINUS_ONE_ALLOWED"]


def setting(default: Any, doc: str, **bounds: Any) -> Any:
    """A dataclass field with a doc line and JSON Schema bounds (minimum, ...)."""
    return field(default=default, metadata={"doc": doc, **bounds})


# Settings where Lightning takes -1 for "no limit" / "all" beside their range (the schema adds it).
MINUS_ONE_ALLOWED = ("max_epochs", "max_steps", "num_sanity_val_steps")


@dataclass
class TrainerSettings:
    """Lightning Trainer arguments that drive the loop, with Lightning's names, meanings and defaults."""

    max_epochs: Union[int, None] = setting(None, "Stop after this many epochs (1000 if neither limit is set; -1: no "
                                                 "epoch limit).", minimum=1)
    max_steps: Union[int, None] = setting(None, "Stop after this many optimizer steps (-1 or none: no step limit).",
                                          minimum=1)
    min_epochs: Union[int, None] = setting(None, "Train at least this many epochs, whatever a callback asks "
                                                 "(EarlyStopping included).", minimum=0)
    min_steps: Union[int, None] = setting(None, "Take at least this many optimizer steps, whatever a callback asks.",
                                          minimum=0)
    max_time: Union[str, dict, None] = setting(None, 'Stop after this much training time: "DD:HH:MM:SS" or '
                                                     "{days, hours, minutes, seconds}.")
    fast_dev_run: Union[bool, int] = setting(False, "A quick check: N batches (true: 1) of training, validation and "
                                                    "test, one epoch, no sanity check, no logs, no checkpoints, no "
                                                    "run folder.", minimum=0)
    num_sanity_val_steps: int = setting(2, "Validation batches run before training, to fail fast (-1: all of them).",
                                        minimum=0)
    check_val_every_n_epoch: Union[int, None] = setting(1, "Validate every N epochs (null: by val_check_interval "
                                                           "alone, counting training batches across epochs).",
                                                        minimum=1)
    val_check_interval: Union[int, float] = setting(1.0, "Validate every N training batches (int), or after this "
                                                         "fraction of each training epoch (float in (0, 1]).")
    overfit_batches: Union[int, float] = setting(0.0, "Train on this many batches of the training split (int, or a "
                                                      "fraction: float), unshuffled, and validate on as many "
                                                      "validation batches; 0: off.", minimum=0)
    log_every_n_steps: int = setting(50, "Log training scalars every N optimizer steps.", minimum=1)
    limit_train_batches: Union[int, float] = setting(1.0, "Batches per training epoch: a count, or a fraction (float).", minimum=0)
    limit_val_batches: Union[int, float] = setting(1.0, "Batches per validation run: a count, or a fraction (float).", minimum=0)
    limit_test_batches: Union[int, float] = setting(1.0, "Batches of the test run: a count, or a fraction (float).", minimum=0)
    limit_predict_batches: Union[int, float] = setting(1.0, "Batches `dtrain predict` runs: a count, or a fraction "
                                                            "(float).", minimum=0)
    accumulate_grad_batches: int = setting(1, "Accumulate gradients over N batches per optimizer step.", minimum=1)
    gradient_clip_val: Union[float, None] = setting(None, "Clip gradients at this value (none: no clipping).", minimum=0)
    gradient_clip_algorithm: Literal["norm", "value"] = setting("norm", "Clip by total norm or by value.")
    detect_anomaly: bool = setting(False, "Run the backward pass under torch.autograd's anomaly detection (slow: "
                                          "names the operation that made a NaN).")
    check_finite_loss: bool = setting(True, "Stop the run, naming the epoch and step, when the training loss becomes "
                                            "NaN or infinite (false: train on, as Lightning does).")
    inference_mode: bool = setting(True, "Evaluate under torch.inference_mode (false: torch.no_grad).")
    enable_progress_bar: bool = setting(True, "Show a progress bar.")
    profiler: Union[Literal["simple", "advanced", "pytorch"], None] = setting(
        None, "Profile fit and test into the run folder: simple (wall-clock per action), advanced (cProfile per "
              "action) or pytorch (torch.profiler traces for TensorBoard); none: off.")
    enable_checkpointing: bool = setting(True, "Without a ModelCheckpoint in callbacks, still save last.ckpt each "
                                               "epoch (false: save no checkpoint at all).")

    @property
    def fast_dev_batches(self) -> int:
        """Batches per stage of a `fast_dev_run` (0: not one)."""
        if self.fast_dev_run is True:
            return 1
        return 0 if self.fast_dev_run is False else int(self.fast_dev_run)

    @property
    def max_time_seconds(self) -> float | None:
        """`max_time` in seconds; None: no time limit."""
        value = self.max_time
        if value is None:
            return None
        if isinstance(value, dict):
            units = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
            return float(sum(units[key] * value[key] for key in value))
        days, hours, minutes, seconds = (int(part) for part in value.split(":"))
        return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)

    @property
    def epochs_limit(self) -> int | None:
        """Epochs the fit may run; None: no epoch limit (`max_epochs: -1`, or only max_steps given)."""
        if self.fast_dev_batches:
            return 1
        if self.max_epochs is None and self.steps_limit is None:
            return 1000  # Lightning's default
        return None if self.max_epochs in (None, -1) else self.max_epochs

    @property
    def steps_limit(self) -> int | None:
        """Optimizer steps the fit may take; None: no step limit (Lightning's `max_steps: -1`)."""
        return None if self.max_steps in (None, -1) else self.max_steps

    @property
    def sanity_steps(self) -> float:
        """Validation batches of the sanity check (`num_sanity_val_steps: -1`: every one)."""
        if self.fast_dev_batches:
            return 0
        return float("inf") if self.num_sanity_val_steps == -1 else self.num_sanity_val_steps

    def minimums_met(self, epochs_done: int, steps_done: int) -> bool:
        """Whether `min_epochs` and `min_steps` allow the fit to stop."""
        return epochs_done >= (self.min_epochs or 0) and steps_done >= (self.min_steps or 0)

    def limit(self, stage: str, total: int) -> int:
        """Batches a stage runs: `limit_<stage>_batches` as a count (int) or a fraction of `total` (float)."""
        from declarative.training.errors import MisconfigurationError

        if self.fast_dev_batches:
            return min(total, self.fast_dev_batches)
        name = f"limit_{stage}_batches"
        if self.overfit_batches and stage in ("train", "val"):
            name = "overfit_batches"  # as Lightning: it replaces limit_train_batches and limit_val_batches
        limit = getattr(self, name)
        if isinstance(limit, int) and not isinstance(limit, bool):
            return min(total, limit)
        if limit > 1.0:
            raise MisconfigurationError(f"{name}={limit} is a fraction above 1.0 — write a fraction up to 1.0, or an "
                                        "integer for a count of batches", ("trainer", name))
        count = int(total * limit)
        if limit > 0 and total > 0 and count == 0:
            raise MisconfigurationError(f"{name}={limit} of {total} batches is less than one batch — raise the "
                                        "fraction, or give a count such as 1", ("trainer", name))
        return count

    def stepping_batches(self, num_train_batches: int) -> int | float:
        """Optimizer steps the whole fit will take (math.inf when no limit bounds it), as Lightning estimates them."""
        per_epoch = math.ceil(num_train_batches / self.accumulate_grad_batches)
        epochs = self.epochs_limit
        total = per_epoch * epochs if epochs is not None else math.inf
        return min(total, self.steps_limit) if self.steps_limit is not None else total
