"""OnExceptionCheckpoint: save a checkpoint when fit raises, as Lightning's callback of that name."""

from __future__ import annotations

import os
from typing import Any

from declarative.callbacks.base import Callback

__all__ = ["OnExceptionCheckpoint"]


class OnExceptionCheckpoint(Callback):
    """Save `<dirpath>/<filename>.ckpt` when training stops on an exception (Ctrl-C and SIGTERM included).

    A stop by SIGTERM or SIGINT comes at a step boundary, so that checkpoint resumes exactly; one saved
    for an error in the middle of a step holds the weights but is marked as not resumable.

    Args:
        dirpath: folder for the checkpoint. Default: ``<run dir>/checkpoints``
        filename: its name, without ``.ckpt``. Default: ``on_exception``
    """

    FILE_EXTENSION = ".ckpt"

    def __init__(self, dirpath: str | None = None, filename: str = "on_exception"):
        self.dirpath = dirpath
        self.filename = filename

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.dirpath or "", self.filename + self.FILE_EXTENSION)

    def setup(self, trainer: Any, model: Any, stage: str) -> None:
        if stage == "fit" and self.dirpath is None:
            self.dirpath = str(trainer.checkpoint_dir)

    def on_exception(self, trainer: Any, model: Any, exception: BaseException) -> None:
        if self.dirpath is not None and getattr(trainer, "model", None) is not None:
            trainer.save_checkpoint(self.ckpt_path)
