"""SpikeDetection: stop training at a spike of the training loss, and write which batches to skip."""

from __future__ import annotations

import json
import math
from collections import deque
from pathlib import Path
from typing import Any, Literal, Optional

from declarative.callbacks.base import Callback
from declarative.training.checkpoint import atomic_write
from declarative.training.errors import EngineError

__all__ = ["SpikeDetection", "TrainingSpikeError"]


class TrainingSpikeError(EngineError):
    """The training loss spiked (Lightning's TrainingSpikeException): the run stops, the batches are on file."""

    def __init__(self, message: str, where: tuple, *, epoch: int, batch_idx: int, path: str):
        super().__init__(message, where)
        self.epoch, self.batch_idx, self.path = epoch, batch_idx, path


class SpikeDetection(Callback):
    """Stop training when the training loss spikes, as Lightning's SpikeDetection, naming the batches to skip.

    After each training batch (from batch `warmup` of each epoch on), the batch's loss is a spike when it is
    no better than the previous batch's and lies at least ``rtol`` × the running mean (and, if given, ``atol``)
    away from the running mean of the last ``window`` losses. A spike stops the run with a located error and
    writes that batch and the one before it (which may have corrupted the weights) to ``skip_batches.json``.
    Reading each batch's loss costs one host sync per batch.

    Args:
        mode: ``min``: lower losses are better; ``max``: higher. Default: min
        window: how many recent losses the running mean covers. Default: 10
        warmup: the first batches of each epoch that are never called a spike. Default: 1
        atol: the least absolute distance from the running mean that is a spike; none: no such bound. Default: None
        rtol: the least distance from the running mean, relative to it, that is a spike; none: no such
            bound. Default: 2.0
        exclude_batches_path: where to write the batch indices: a ``.json`` file or a folder (the file is then
            ``skip_batches.json`` in it); relative paths are in the run folder. Default: None (the run folder)
        finite_only: a NaN or infinite loss is a spike; false: such losses are left out of the statistics and
            never called a spike. Default: True
    """

    def __init__(self, mode: Literal["min", "max"] = "min", window: int = 10, warmup: int = 1,
                 atol: Optional[float] = None, rtol: Optional[float] = 2.0, exclude_batches_path: Optional[str] = None,
                 finite_only: bool = True):
        if mode not in ("min", "max"):
            raise ValueError(f"Invalid mode. Has to be min or max, found {mode!r}")
        self.mode, self.window, self.warmup = mode, window, warmup
        self.atol, self.rtol = atol, rtol
        self.exclude_batches_path = exclude_batches_path
        self.finite_only = finite_only
        self.last_val = 0.0
        self.recent: deque[float] = deque(maxlen=window)
        self.bad_batches: list[int] = []
        self._path: Path | None = None

    def setup(self, trainer: Any, model: Any, stage: str) -> None:
        folder = Path(trainer.root_dir)
        path = Path(self.exclude_batches_path) if self.exclude_batches_path else folder
        path = path if path.is_absolute() else folder / path
        self._path = path if path.suffix == ".json" else path / "skip_batches.json"

    def on_train_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = float(outputs.float().mean())  # the batch's loss: one host sync
        is_spike = batch_idx >= self.warmup and self._is_spike(loss)
        if trainer.strategy.reduce_any(is_spike):  # a spike on any process stops them all
            self._handle_spike(trainer, batch_idx, loss)
        finite = math.isfinite(loss)
        if not self.finite_only:  # every process leaves out a batch whose loss is not finite on any of them
            finite = not trainer.strategy.reduce_any(not finite)
        if finite and math.isfinite(loss):
            self.recent.append(loss)
            self.last_val = loss

    def _running_mean(self) -> float:
        return sum(self.recent) / len(self.recent) if self.recent else math.nan

    def _is_spike(self, loss: float) -> bool:
        if self.finite_only and not math.isfinite(loss):
            return True
        difference = loss - self.last_val
        if difference <= 0 if self.mode == "min" else difference >= 0:  # no worse than the last: never a spike
            return False
        mean = self._running_mean()
        distance = abs(loss - mean)
        return ((self.atol is None or distance >= abs(self.atol))
                and (self.rtol is None or distance >= abs(self.rtol * mean)))

    def _handle_spike(self, trainer: Any, batch_idx: int, loss: float) -> None:
        # This batch's data may be bad; the one before may have corrupted the weights: skip both when resuming.
        self.bad_batches.extend([batch_idx - 1, batch_idx])
        assert self._path is not None
        if trainer.is_global_zero:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(self.bad_batches, indent=4) + "\n"
            atomic_write(self._path, lambda file: file.write(text.encode("utf-8")))
        raise TrainingSpikeError(
            f"training loss spike at epoch {trainer.current_epoch}, batch {batch_idx}: loss {loss:.4g} against a "
            f"running mean of {self._running_mean():.4g} over the last {len(self.recent)} batches (rtol {self.rtol}, "
            f"atol {self.atol}) — batches {self.bad_batches[-2:]} are written to {self._path}; lower the learning "
            "rate, or look at those batches' data", ("callbacks", trainer.callbacks.index(self)),
            epoch=trainer.current_epoch, batch_idx=batch_idx, path=str(self._path))

    def state_dict(self) -> dict:
        return {"last_val": self.last_val, "mode": self.mode, "warmup": self.warmup, "atol": self.atol,
                "rtol": self.rtol, "bad_batches": list(self.bad_batches), "recent": list(self.recent)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.last_val = state_dict["last_val"]
        self.bad_batches = list(state_dict["bad_batches"])
        self.recent = deque(state_dict["recent"], maxlen=self.window)
