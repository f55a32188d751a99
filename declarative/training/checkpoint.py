"""Checkpoints: plain dicts of tensors, numbers and strings, written atomically, read with weights_only.

A checkpoint embeds the resolved spec, so the file alone is enough to rebuild the model and
data and test it. Its contents load with `torch.load(path, weights_only=True)`: no pickled
Python objects, so opening a checkpoint from elsewhere cannot run code.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

import declarative
from declarative.errors import Location, Problem, SpecError
from declarative.safe_load import UnreadableFile, load_weights_only

__all__ = ["VERSION_KEY", "WEIGHTS_ONLY_RESUME", "atomic_write", "link_or_copy", "remove_stale_temps", "save_checkpoint",
           "load_checkpoint"]

VERSION_KEY = "dtrain_version"
REQUIRED_KEYS = (VERSION_KEY, "spec", "state_dict")


# The machine that writes a temp file, in its name: a sweep removes only temp files of this machine's
# processes that are gone, never one that a live save (here, or on another machine of a shared disk) writes.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
_TEMP = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write a file completely or not at all: a temp file in the same folder, then `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder: replace stays atomic. Host and pid in the name: `remove_stale_temps` knows its writer.
    tmp = path.with_name(f".{path.name}.{_HOST}-{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: never leave a partial file behind
        tmp.unlink(missing_ok=True)
        raise


def link_or_copy(target: str | os.PathLike, link: str | os.PathLike) -> None:
    """Make `link` a symbolic link to `target` (relative: the run folder may move), replacing what was there in
    one step; a copy of `target` where the file system has no symbolic links."""
    link, target = Path(link), Path(target)
    tmp = link.with_name(f".{link.name}.{_HOST}-{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.symlink(os.path.relpath(target, link.parent), tmp)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
        with open(target, "rb") as source:
            atomic_write(link, lambda file: shutil.copyfileobj(source, file))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # it exists, under another user
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temp files that saves killed mid-write (kill -9, a crash) left in `folder`: those written
    on this machine by a process that is gone. Returns what it removed."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:  # no such folder yet: nothing to clean
        return removed
    for name in names:
        found = _TEMP.match(name)
        if found and found["host"] == _HOST and not _running(int(found["pid"])):
            path = Path(folder) / name
            try:
                path.unlink()
                removed.append(path)
            except OSError:  # removed by another sweep meanwhile, or not ours to remove
                pass
    return removed


def save_checkpoint(contents: dict[str, Any], path: str | os.PathLike) -> None:
    """Save atomically: an interrupted save leaves the previous file (or none), never half of one.

    `contents` is plain data (tensors, numbers, strings, lists, dicts); the dtrain version goes first."""
    contents = {VERSION_KEY: declarative.__version__, **contents}
    atomic_write(path, lambda file: torch.save(contents, file))


WEIGHTS_ONLY_RESUME = ("this checkpoint holds the weights only (ModelCheckpoint save_weights_only: true): no optimizer, "
                       "scheduler or loop state to resume from — resume from a full checkpoint of the run, or start a "
                       "new run from these weights with model.init_from: <this file>")


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
            raise _not_a_checkpoint(where, f"it holds Python objects ({exc.reason}), which dtrain never loads: "
                                           f"they could run code. A dtrain checkpoint holds only tensors and plain "
                                           f"values") from None
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
