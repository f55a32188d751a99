"""ModelCheckpoint: keep the top-k checkpoints by a monitored metric, and/or the latest as last.ckpt."""

from __future__ import annotations

import math
import os
import re
import time
from typing import Any, Literal

from declarative.callbacks.base import Callback, require_metric

__all__ = ["ModelCheckpoint", "FILENAME_PATTERN", "FILENAME_RULE"]

_FIELD = re.compile(r"\{([^{}:]+)(?::([^{}]*))?\}")  # `{name}` or `{name:format}` in a filename template
# A filename template names a file in dirpath: no folder separators outside its `{fields}` (a field such as
# `{val/loss}` may hold one: it becomes `_`), so a template cannot reach outside dirpath (`../x`, `/tmp/x`).
FILENAME_PATTERN = r"^(?:[^/\\{}]|\{[^{}]*\})+$"
FILENAME_RULE = "may not hold '/' or '\\' outside its {fields}: it names a file in dirpath (put a folder in dirpath)"


class ModelCheckpoint(Callback):
    """Save checkpoints during training, with Lightning's arguments and meaning.

    Saves after each validation run (after each training epoch when there is no validation), and during
    an epoch every N training steps or every so much time when asked to. A save asked for during a step
    is written at the step's end: every checkpoint resumes exactly (`dtrain run --resume`).

    Args:
        dirpath: folder for the checkpoints. Default: ``<run dir>/checkpoints``
        filename: a template such as ``"{epoch}-{val/loss:.2f}"``; each field becomes ``name=value``
            (a ``/`` in a metric name becomes ``_``). Default: ``"{epoch}-{step}"``, i.e. ``epoch=0-step=100``
        monitor: the metric that ranks checkpoints; without one the latest checkpoint counts as best.
        verbose: print a line for each ranked save (and each check that ranks too low). Default: False
        save_last: also save ``last.ckpt`` each time; ``link``: make it a symbolic link to the latest checkpoint
            saved (a copy where the file system has none). Default: None (no)
        save_top_k: how many of the best checkpoints to keep; -1 keeps all, 0 none. Default: 1
        save_on_exception: save a checkpoint when training stops on an exception. Default: False
        save_weights_only: save the weights (and the spec) only: the file tests, predicts and exports, but
            holds no optimizer, scheduler or loop state to resume from. Default: False
        mode: ``min`` or ``max``: whether a lower or a higher monitored value is better. Default: min
        auto_insert_metric_name: write each field as ``name=value``; false: the value alone, e.g.
            ``"epoch{epoch:02d}-loss{val/loss:.2f}"`` gives ``epoch03-loss0.12``. Default: True
        every_n_train_steps: save every this many optimizer steps, in the middle of epochs too. Default: None
        train_time_interval: save when this much training time has passed since the last save: seconds, or
            ``"HH:MM:SS"``. Default: None
        every_n_epochs: save every this many epochs; 0 never. Default: 1, or 0 when every_n_train_steps or
            train_time_interval is given (they exclude each other, as in Lightning)
        save_on_train_epoch_end: save at the end of the training epoch rather than after validation.
            Default: None (after validation when the run validates)
        enable_version_counter: when a file of the name exists, save as ``name-v1.ckpt``, ``name-v2.ckpt``, ...;
            false: overwrite it. Default: True
    """

    CHECKPOINT_NAME_LAST = "last"
    FILE_EXTENSION = ".ckpt"

    def __init__(self, dirpath: str | None = None, filename: str | None = None, monitor: str | None = None,
                 verbose: bool = False, save_last: bool | Literal["link"] | None = None, save_top_k: int = 1,
                 save_on_exception: bool = False, save_weights_only: bool = False,
                 mode: Literal["min", "max"] = "min", auto_insert_metric_name: bool = True,
                 every_n_train_steps: int | None = None, train_time_interval: float | str | None = None,
                 every_n_epochs: int | None = None, save_on_train_epoch_end: bool | None = None,
                 enable_version_counter: bool = True):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be one of {{'min', 'max'}}, but got mode={mode!r}")
        if save_last not in (None, True, False, "link"):
            raise ValueError(f"save_last must be true, false or 'link', but got save_last={save_last!r}")
        if save_top_k < -1:
            raise ValueError(f"save_top_k must be -1 (all), 0 or more, but got save_top_k={save_top_k}")
        if monitor is None and save_top_k not in (-1, 0, 1):
            raise ValueError(f"save_top_k={save_top_k} needs a monitor to rank checkpoints by — set monitor "
                             "(e.g. val/loss), or save_top_k to -1 (all), 0 or 1 (the latest)")
        if every_n_epochs is not None and every_n_epochs < 0:
            raise ValueError(f"every_n_epochs must be 0 or more, but got every_n_epochs={every_n_epochs}")
        if filename is not None and not re.match(FILENAME_PATTERN, filename):
            raise ValueError(f"filename {filename!r} {FILENAME_RULE}")
        for name, spec in _FIELD.findall(filename or ""):  # a bad format fails now, not at the first save
            try:
                format(0 if name in ("epoch", "step") else 0.0, spec)
            except ValueError as exc:
                raise ValueError(f"filename field {{{name}:{spec}}} has a format Python cannot apply ({exc})") from None
        if every_n_train_steps is not None and every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be 0 or more, but got every_n_train_steps={every_n_train_steps}")
        interval = _seconds(train_time_interval) if train_time_interval is not None else None
        given = [name for name, value in (("every_n_epochs", every_n_epochs), ("every_n_train_steps",
                 every_n_train_steps), ("train_time_interval", interval)) if value]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)} exclude each other — keep one of them")
        if every_n_epochs is None:
            every_n_epochs = 0 if (every_n_train_steps or interval) else 1
        self.dirpath = dirpath
        self.filename = filename
        self.monitor = monitor
        self.verbose = verbose
        self.mode = mode
        self.save_top_k = save_top_k
        self.save_last = save_last
        self.save_on_exception = save_on_exception
        self.save_weights_only = save_weights_only
        self.auto_insert_metric_name = auto_insert_metric_name
        self.enable_version_counter = enable_version_counter
        self.every_n_epochs = every_n_epochs
        self.every_n_train_steps = every_n_train_steps or 0
        self.train_time_interval = interval
        self.save_on_train_epoch_end = save_on_train_epoch_end
        self._fitting = False
        self._last_checkpoint_saved = ""  # the latest top-k save: what `save_last: link` points at
        self._last_global_step_saved = -1
        self._last_time = time.monotonic()
        self.best_k_models: dict[str, float] = {}
        self.kth_best_model_path = ""
        self.best_model_path = ""
        self.best_model_score: float | None = None
        self.last_model_path = ""

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor, mode=self.mode, every_n_train_steps=self.every_n_train_steps,
                                        every_n_epochs=self.every_n_epochs, train_time_interval=self.train_time_interval)

    def setup(self, trainer: Any, model: Any, stage: str) -> None:
        self._fitting = stage == "fit"
        if stage != "fit":
            return
        if self.dirpath is None:
            self.dirpath = str(trainer.checkpoint_dir)
        from declarative.training.checkpoint import remove_stale_temps
        from declarative.training.errors import MisconfigurationError

        try:  # a folder it cannot write is found now, not at the first save
            os.makedirs(self.dirpath, exist_ok=True)
        except OSError as exc:
            raise MisconfigurationError(f"cannot make the checkpoint folder {self.dirpath}: {exc.strerror or exc}",
                                        ("dirpath",)) from None
        remove_stale_temps(self.dirpath)  # a dirpath that runs share: what killed saves left in it
        if self.monitor is not None:
            require_metric(trainer, self.monitor, "ModelCheckpoint monitor", ("monitor",))
        for name, _ in _FIELD.findall(self.filename or ""):
            if name not in ("epoch", "step"):
                require_metric(trainer, name, "ModelCheckpoint filename field", ("filename",))

    def on_train_start(self, trainer: Any, model: Any) -> None:
        self._last_time = time.monotonic()

    def on_train_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._last_global_step_saved == trainer.global_step:
            return  # a step of gradient accumulation, or one already saved
        due = bool(self.every_n_train_steps) and trainer.global_step % self.every_n_train_steps == 0
        if self.train_time_interval is not None:
            # process 0's clock decides for all: every process saves together
            due = _agreed(trainer, time.monotonic() - self._last_time >= self.train_time_interval)
        if due:
            self._save(trainer)

    def on_validation_end(self, trainer: Any, model: Any) -> None:
        if not trainer.sanity_checking and not self._saves_on_train_epoch_end(trainer):
            self._save_if_due(trainer)

    def on_train_epoch_end(self, trainer: Any, model: Any) -> None:
        if self._saves_on_train_epoch_end(trainer):
            self._save_if_due(trainer)

    def _saves_on_train_epoch_end(self, trainer: Any) -> bool:
        if self.save_on_train_epoch_end is not None:
            return self.save_on_train_epoch_end
        return not trainer.has_validation

    def _save_if_due(self, trainer: Any) -> None:
        if self.every_n_epochs < 1 or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        if self._last_global_step_saved == trainer.global_step and self.every_n_train_steps:
            return  # this step's checkpoint is saved already
        self._save(trainer)

    def _save(self, trainer: Any) -> None:
        self._last_global_step_saved = trainer.global_step
        self._last_time = time.monotonic()
        candidates = {**trainer.callback_metrics, "epoch": trainer.current_epoch, "step": trainer.global_step}
        dropped, saved_before = None, self._last_checkpoint_saved
        if self.save_top_k != 0 and (self.monitor is None or self.monitor in trainer.callback_metrics):
            if self.monitor is None:
                dropped = self._save_latest(trainer, candidates)
            else:
                dropped = self._save_if_top_k(trainer, candidates)
        if self.save_last:
            self.last_model_path = os.path.join(self.dirpath, self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION)
            target = self._last_checkpoint_saved
            if self.save_last == "link" and target and target == saved_before:  # saved before: is it still there?
                target = target if _agreed(trainer, os.path.exists(target)) else ""  # (e.g. after a resume)
            if self.save_last == "link" and target:
                trainer.link_checkpoint(target, self.last_model_path)
            else:
                trainer.save_checkpoint(self.last_model_path, self.save_weights_only)
        if dropped is not None:  # last: last.ckpt never points at a removed file
            trainer.remove_checkpoint(dropped)

    def on_exception(self, trainer: Any, model: Any, exception: BaseException) -> None:
        """save_on_exception: the state when fit stopped, under the filename template (and last.ckpt)."""
        if not (self.save_on_exception and self._fitting and self.dirpath and getattr(trainer, "model", None) is not None):
            return
        if trainer.sanity_checking or trainer.global_step in (0, self._last_global_step_saved):
            return  # nothing trained since the last save
        candidates = {**trainer.callback_metrics, "epoch": trainer.current_epoch, "step": trainer.global_step}
        path = self._free_path(candidates)
        try:
            trainer.save_checkpoint(path, self.save_weights_only)
            if self.save_last:
                self.last_model_path = os.path.join(self.dirpath, self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION)
                trainer.save_checkpoint(self.last_model_path, self.save_weights_only)
        except OSError as exc:  # e.g. the disk that failed the run: the run's own error is the one to show
            trainer.print(f"{type(exception).__name__} stopped training; saving {path} failed too: {exc}")
            return
        self._last_checkpoint_saved = path
        trainer.print(f"{type(exception).__name__} stopped training: saved {path}")

    def format_checkpoint_name(self, metrics: dict[str, Any], version: int | None = None) -> str:
        """The path for these metrics: `{epoch}-{val/loss:.2f}` → `<dirpath>/epoch=3-val_loss=0.12.ckpt`
        (`3-0.12` without auto_insert_metric_name)."""

        def fill(match: re.Match) -> str:
            name, spec = match.group(1), match.group(2) or ""
            value = format(metrics.get(name, 0), spec).replace("/", "_").replace("\\", "_")  # a fill of `/`
            return f"{name.replace('/', '_')}={value}" if self.auto_insert_metric_name else value

        name = _FIELD.sub(fill, self.filename or "{epoch}-{step}")
        if version is not None:
            name += f"-v{version}"
        return os.path.join(self.dirpath, name + self.FILE_EXTENSION)

    def _free_path(self, metrics: dict[str, Any], replacing: str | None = None) -> str:
        """A path that overwrites no kept checkpoint: `-v1`, `-v2`, ... when the name is taken (unless
        enable_version_counter is false: then the file of that name is overwritten)."""
        path, version = self.format_checkpoint_name(metrics), 1
        while self.enable_version_counter and os.path.lexists(path) and path != replacing:
            path, version = self.format_checkpoint_name(metrics, version), version + 1
        return path

    def _write(self, trainer: Any, path: str) -> None:
        trainer.save_checkpoint(path, self.save_weights_only)
        self._last_checkpoint_saved = path

    def _save_latest(self, trainer: Any, metrics: dict[str, Any]) -> str | None:
        """No monitor: the newest checkpoint is the best; save_top_k=1 keeps only it. Returns the file to drop."""
        previous = self.best_model_path
        path = self._free_path(metrics, replacing=previous if self.save_top_k == 1 else None)
        self.best_model_path = path
        self._write(trainer, path)
        return previous if self.save_top_k == 1 and previous and previous != path else None

    def _save_if_top_k(self, trainer: Any, metrics: dict[str, Any]) -> str | None:
        """Save when the monitored value ranks in the top k. Returns the file that left the top k."""
        current = float(metrics[self.monitor])
        if math.isnan(current):  # a NaN never ranks above a real value
            current = math.inf if self.mode == "min" else -math.inf
        if not self._ranks_in_top_k(current):
            if self.verbose:
                trainer.print(f"Epoch {metrics['epoch']:d}, global step {metrics['step']:d}: {self.monitor!r} was "
                              f"not in top {self.save_top_k}")
            return None
        k = len(self.best_k_models) + 1 if self.save_top_k == -1 else self.save_top_k
        dropped = None
        if len(self.best_k_models) == k:
            dropped = self.kth_best_model_path
            del self.best_k_models[dropped]
        path = self._free_path(metrics, replacing=dropped)
        self.best_k_models[path] = current
        worst, best = (max, min) if self.mode == "min" else (min, max)
        if len(self.best_k_models) == k:
            self.kth_best_model_path = worst(self.best_k_models, key=self.best_k_models.get)
        self.best_model_path = best(self.best_k_models, key=self.best_k_models.get)
        self.best_model_score = self.best_k_models[self.best_model_path]
        if self.verbose:  # Lightning's words
            trainer.print(f"Epoch {metrics['epoch']:d}, global step {metrics['step']:d}: {self.monitor!r} reached "
                          f"{current:0.5f} (best {self.best_model_score:0.5f}), saving model to {path!r} as top {k}")
        self._write(trainer, path)
        return dropped if dropped is not None and dropped != path else None

    def _ranks_in_top_k(self, current: float) -> bool:
        if self.save_top_k == -1 or len(self.best_k_models) < self.save_top_k:
            return True
        kth = self.best_k_models[self.kth_best_model_path]
        return current < kth if self.mode == "min" else current > kth

    def state_dict(self) -> dict:
        return {
            "monitor": self.monitor, "best_model_score": self.best_model_score,
            "best_model_path": self.best_model_path, "kth_best_model_path": self.kth_best_model_path,
            "best_k_models": dict(self.best_k_models), "last_model_path": self.last_model_path,
            "dirpath": self.dirpath, "last_global_step_saved": self._last_global_step_saved,
            "last_checkpoint_saved": self._last_checkpoint_saved,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.best_model_score = state_dict["best_model_score"]
        self.best_model_path = state_dict["best_model_path"]
        self.kth_best_model_path = state_dict["kth_best_model_path"]
        self.best_k_models = dict(state_dict["best_k_models"])
        self.last_model_path = state_dict["last_model_path"]
        self._last_global_step_saved = state_dict.get("last_global_step_saved", -1)
        self._last_checkpoint_saved = state_dict.get("last_checkpoint_saved", "")


def _agreed(trainer: Any, decision: bool) -> bool:
    """Process 0's decision, on every process: they save (a collective under FSDP) or link together."""
    strategy = getattr(trainer, "strategy", None)
    return strategy.broadcast(decision) if strategy is not None else decision


def _seconds(interval: float | str) -> float:
    """`train_time_interval` in seconds: a number, or "HH:MM:SS" (Lightning takes a timedelta)."""
    if isinstance(interval, (int, float)) and not isinstance(interval, bool):
        seconds = float(interval)
    else:
        try:
            parts = [float(part) for part in str(interval).split(":")]
        except ValueError:
            parts = []
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"train_time_interval must be seconds or 'HH:MM:SS', but got {interval!r}")
        seconds = sum(part * 60 ** index for index, part in enumerate(reversed(parts)))
    if seconds <= 0:
        raise ValueError(f"train_time_interval must be more than 0 seconds, but got {interval!r}")
    return seconds
