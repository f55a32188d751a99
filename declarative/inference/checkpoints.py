"""Which checkpoint a command means: a file, or a run folder with `best` or `last` (Lightning's ckpt_path='best').

    runs/digits/version_0/checkpoints/epoch=3-step=80.ckpt   that file
    runs/digits/version_0              its best checkpoint, else its last
    runs/digits/version_0/best         the best checkpoint by the run's ModelCheckpoint monitor
    runs/digits/version_0/last         its last.ckpt
    runs/digits                        the newest version_<N> in it, as above

The run's results.json names the best and last checkpoints; without it (a run still going, or one
that was stopped) the checkpoints folder is looked at: last.ckpt, else the newest file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from declarative.errors import Location, Problem, SpecError

__all__ = ["resolve_checkpoint"]

_VERSION = re.compile(r"version_(\d+)")
_CHOICES = ("best", "last")


def _error(path: Path, message: str) -> SpecError:
    return SpecError(Problem(Location(str(path)), message))


def _newest_version(folder: Path) -> Path | None:
    versions = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _VERSION.fullmatch(p.name))]
    return max(versions)[1] if versions else None


def _from_run(run: Path, which: str | None) -> Path:
    """`which` (best, last, or None: best else last) of the run folder `run`."""
    results = run / "results.json"
    recorded = {}
    if results.is_file():
        try:
            recorded = json.loads(results.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = {}
    candidates = {"best": recorded.get("best_model_path"), "last": recorded.get("last_model_path")}
    folder = run / "checkpoints"
    if not candidates["last"] and (folder / "last.ckpt").is_file():
        candidates["last"] = str(folder / "last.ckpt")
    if not candidates["best"] and folder.is_dir():
        files = sorted((p for p in folder.glob("*.ckpt") if p.name != "last.ckpt"), key=lambda p: p.stat().st_mtime)
        candidates["best"] = str(files[-1]) if files else None
    order = [which] if which else ["best", "last"]
    for name in order:
        found = candidates[name]
        if found and Path(found).is_file():
            return Path(found)
    what = f"{which} checkpoint" if which else "checkpoint"
    raise _error(run, f"the run has no {what} (looked in results.json and {folder}); "
                      f"give a .ckpt file, or a run whose ModelCheckpoint saved one")


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file `path` means (see the module's docstring); a located error when there is none."""
    path = Path(path)
    if path.is_file():
        return path
    which = None
    if not path.exists() and path.name in _CHOICES:
        path, which = path.parent, path.name
    if not path.is_dir():
        raise _error(path, "no such checkpoint file or run folder" +
                     (" (a run folder's best or last checkpoint is RUN/best or RUN/last)" if not which else ""))
    if not (path / "checkpoints").is_dir() and not (path / "results.json").is_file():
        newest = _newest_version(path)
        if newest is None:
            raise _error(path, "is neither a checkpoint nor a run folder (runs/<name>/version_<N>/)")
        path = newest
    return _from_run(path, which)
