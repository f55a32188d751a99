"""Checkpoints: plain dicts of tensors, numbers and strings, written atomically, read with weights_only.

A checkpoint embeds the resolved spec, so the file alone is enough to rebuild the model and
data and test it. Its contents load with `torch.load(path, weights_only=True)`: no pickled
Python objects, so opening a checkpoint from elsewhere cannot run code.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

import declarative
from declarative.errors import Location, Problem, SpecError
from declarative.safe_load import UnreadableFile, load_weights_only

__all__ = ["VERSION_KEY", "atomic_write", "save_checkpoint", "load_checkpoint"]

VERSION_KEY = "dtrain_version"
REQUIRED_KEYS = (VERSION_KEY, "spec", "state_dict")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write a file completely or not at all: a temp file in the same folder, then `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # same folder: replace stays atomic
    try:
        with open(tmp, "xb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: never leave a partial file behind
        tmp.unlink(missing_ok=True)
        raise


def save_checkpoint(contents: dict[str, Any], path: str | os.PathLike) -> None:
    """Save atomically: an interrupted save leaves the previous file (or none), never half of one.

    `contents` is plain data (tensors, numbers, strings, lists, dicts); the dtrain version goes first."""
    contents = {VERSION_KEY: declarative.__version__, **contents}
    atomic_write(path, lambda file: torch.save(contents, file))


def _not_a_checkpoint(path: str, why: str) -> SpecError:
    return SpecError(Problem(Location(path), f"not a dtrain checkpoint: {why}"))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's contents (tensors on the CPU), loaded with weights_only=True."""
    where = str(path)
    try:
        contents = load_weights_only(path)
    except FileNotFoundError:
        raise SpecError(Problem(Location(where), "no such checkpoint file")) from None
    except IsADirectoryError:
        raise SpecError(Problem(Location(where), "is a folder, not a checkpoint file")) from None
    except UnreadableFile as exc:
        if exc.pickled_objects:
            raise _not_a_checkpoint(where, f"it holds Python objects that weights_only loading refuses "
                                           f"({exc.reason})") from None
        raise _not_a_checkpoint(where, f"torch.load cannot read it ({exc.reason})") from None
    if not isinstance(contents, dict):
        raise _not_a_checkpoint(where, f"it holds a {type(contents).__name__}, not a dtrain checkpoint's dict")
    if VERSION_KEY not in contents:
        origin = " (it is a PyTorch Lightning checkpoint)" if "pytorch-lightning_version" in contents else ""
        raise _not_a_checkpoint(where, f"it has no '{VERSION_KEY}'{origin}; `dtrain run` writes checkpoints under "
                                       "runs/<name>/version_<N>/checkpoints/")
    missing = [key for key in REQUIRED_KEYS if key not in contents]
    if missing:
        raise _not_a_checkpoint(where, f"it lacks {', '.join(repr(k) for k in missing)}")
    return contents
