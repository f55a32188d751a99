"""Resuming a run: which checkpoint, whether the spec still describes the same training, and the record.

    dtrain run spec.yaml --resume PATH      PATH: a checkpoint, a run folder (its newest checkpoint),
                                            or `last` (the newest run of the spec's name)
    dtrain resume RUN_FOLDER [KEY=VALUE]    the spec the checkpoint embeds, with the overrides

A resume may change what does not alter the math already done: the limits (max_epochs, max_steps),
callbacks, loggers, the progress bar and logging interval, how and where the data is read. Any other
difference between the spec and the checkpoint's is a located error that lists the keys.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from pathlib import Path
from typing import Any, Iterable

from declarative.errors import Location, Problem, SpecError
from declarative.spec.config import PATH_ARGUMENTS, Spec
from declarative.training.checkpoint import WEIGHTS_ONLY_RESUME, atomic_write, load_checkpoint

__all__ = ["MAY_CHANGE", "find_checkpoint", "run_folder_of", "adopt_recorded_seed", "check_same_training",
           "record_resume", "interrupted_message"]

# Spec keys (and everything under them) a resume may change: none alters the training already done.
MAY_CHANGE = ("trainer.max_epochs", "trainer.max_steps", "trainer.max_time", "trainer.enable_progress_bar",
              "trainer.log_every_n_steps", "trainer.enable_checkpointing", "trainer.default_root_dir", "trainer.profiler",
              "trainer.limit_predict_batches", "callbacks", "logger",
              "data.loader", "data.num_workers", "data.pin_memory", "data.persistent_workers")
RESUMES_FILE = "resumes.json"
_VERSION = re.compile(r"version_(\d+)")


def _newest_checkpoint(folder: Path) -> Path:
    """The run folder's most recently written checkpoint that can resume (saved at a step boundary)."""
    candidates = sorted((folder / "checkpoints").glob("*.ckpt"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for path in candidates:
        if load_checkpoint(path).get("loop"):
            return path
    raise SpecError(Problem(Location(str(folder)), "this run folder has no checkpoint to resume from (checkpoints/ "
                                                   "holds none saved at a step boundary with the training state; "
                                                   "save_weights_only checkpoints hold the weights only)"))


def find_checkpoint(target: str | Path, *, root: str | Path = "runs", name: str | None = None) -> Path:
    """The checkpoint `target` names: a checkpoint file, a run folder, or `last` (the newest run of `name`)."""
    if str(target) == "last":
        parent = Path(root) / (name or "")
        versions = sorted((int(m.group(1)), p) for p in parent.glob("version_*") if (m := _VERSION.fullmatch(p.name)))
        if name is None or not versions:
            raise SpecError(Problem(Location(str(parent)), "--resume last: there is no run of this spec to resume "
                                                           "(no version_<N> folder here)"))
        return _newest_checkpoint(versions[-1][1])
    path = Path(target)
    if path.is_dir():
        return _newest_checkpoint(path)
    if not path.exists():
        raise SpecError(Problem(Location(str(path)), "no such checkpoint or run folder — give a .ckpt file, a run "
                                                     "folder (runs/<name>/version_<N>) or `last`"))
    return path


def run_folder_of(checkpoint: Path, contents: dict[str, Any]) -> Path:
    """The run folder a checkpoint belongs to: the run goes on there."""
    checkpoint = checkpoint.resolve()
    if checkpoint.parent.name == "checkpoints" and (checkpoint.parent.parent / "spec.yaml").exists():
        return checkpoint.parent.parent
    return Path(contents["loop"]["root_dir"])


def adopt_recorded_seed(spec: Spec, contents: dict[str, Any]) -> Spec:
    """A spec that sets no seed takes the checkpoint's (an unseeded run records the one it drew)."""
    written = spec.document is not None and isinstance(spec.document.data, dict) and "seed" in spec.document.data
    return spec if written else dataclasses.replace(spec, seed=contents["spec"]["seed"])


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}.{index}", out)
    else:
        out[prefix] = value
    return out


def _may_change(key: str) -> bool:
    if any(key == allowed or key.startswith(allowed + ".") for allowed in MAY_CHANGE):
        return True
    parts = key.split(".")
    return parts[0] == "data" and parts[-1] in PATH_ARGUMENTS  # where the data lives now


def check_same_training(spec: Spec, contents: dict[str, Any], checkpoint: Path) -> None:
    """A located error when the (resolved) spec trains differently from the one the checkpoint recorded."""
    if contents.get("weights_only"):
        raise SpecError(Problem(Location(str(checkpoint)), WEIGHTS_ONLY_RESUME))
    if not contents.get("loop"):
        raise SpecError(Problem(Location(str(checkpoint)), "this checkpoint cannot resume exactly: it was saved in the "
                                                           "middle of a step (by an exception hook) — resume from the "
                                                           "run folder, whose newest resumable checkpoint is taken"))
    now, then = _flatten(spec.to_dict(), "", {}), _flatten(contents["spec"], "", {})
    differ = [key for key in sorted(set(now) | set(then), key=lambda k: (k.split(".")[0], k))
              if now.get(key, "<absent>") != then.get(key, "<absent>") and not _may_change(key)]
    if not differ:
        return
    shown = ", ".join(f"{key} ({then.get(key, 'absent')} in the checkpoint, {now.get(key, 'absent')} now)"
                      for key in differ[:8]) + (f" and {len(differ) - 8} more" if len(differ) > 8 else "")
    first = tuple(int(part) if part.isdigit() else part for part in differ[0].split("."))
    raise spec.error(first, f"resuming {checkpoint} with a spec that trains differently: {shown} — a resume keeps "
                            "these as the checkpoint has them; it may change only " + ", ".join(MAY_CHANGE)
                            + " and where the data lives")


def record_resume(run_dir: Path, checkpoint: Path, contents: dict[str, Any], overrides: Iterable[str]) -> None:
    """Add this resume to the run folder's resumes.json: when, from which checkpoint and step, which overrides."""
    path = run_dir / RESUMES_FILE
    history = json.loads(path.read_text()) if path.exists() else []
    history.append({"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "checkpoint": str(checkpoint.resolve()), "epoch": contents["loop"]["epoch"],
                    "global_step": contents["loop"]["global_step"], "overrides": list(overrides)})
    text = json.dumps(history, indent=2) + "\n"
    atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def interrupted_message(exc) -> str:
    """What a run stopped by a signal says: where it stopped, and the command that resumes it."""
    run_dir = exc.checkpoint.parent.parent
    return (f"stopped by {exc.signal_name} at epoch {exc.epoch}, step {exc.global_step}: saved {exc.checkpoint}\n"
            f"resume with: dtrain resume {run_dir}")
