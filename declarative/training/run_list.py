"""The runs under a root folder (`runs/<name>/version_<N>/`), for `dtrain runs`: status, start, duration,
epochs and the best value of the monitored metric, newest first.

Everything comes from the files a run leaves: run.json (status and timing), results.json (written at a
successful end), metrics.csv (the logged values, also of a run still going or one that crashed) and
spec.yaml (which metric is monitored: ModelCheckpoint's, else EarlyStopping's, else val/loss).
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

_VERSION = re.compile(r"version_(\d+)")


@dataclass
class RunInfo:
    name: str
    version: int
    path: Path
    status: str  # success, failed, interrupted, running, crashed, or incomplete (no record of its end)
    started: float  # seconds since the epoch
    duration_s: float | None
    epochs: int | None
    monitor: str
    best: float | None


def _json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else None
    except (OSError, ValueError):
        return None


def _monitored(spec_file: Path) -> tuple[str, str]:
    """(metric, mode) the run watched: its ModelCheckpoint's monitor, else its EarlyStopping's, else val/loss."""
    try:
        spec = yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        spec = {}
    callbacks = spec.get("callbacks") if isinstance(spec, dict) else None
    for wanted in ("ModelCheckpoint", "EarlyStopping"):
        for item in callbacks if isinstance(callbacks, list) else []:
            args = item.get(wanted) if isinstance(item, dict) else None
            if isinstance(args, dict) and isinstance(args.get("monitor"), str):
                return args["monitor"], args.get("mode", "min")
    return "val/loss", "min"


def _from_metrics(path: Path, monitor: str, mode: str) -> tuple[float | None, int | None]:
    """(best value of `monitor`, epochs with an epoch-level training row) from metrics.csv."""
    best, epochs = None, set()
    try:
        with open(path, newline="", encoding="utf-8") as file:
            for row in csv.DictReader(file):
                value = row.get(monitor)
                if value:
                    number = float(value)
                    if not math.isnan(number) and (best is None or (number > best if mode == "max" else number < best)):
                        best = number
                if any(v for k, v in row.items() if k and k.startswith("train/") and not k.endswith("_step")):
                    epochs.add(row.get("epoch"))
    except (OSError, ValueError, csv.Error):
        pass
    return best, (len(epochs) or None)


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def _status(record: dict[str, Any] | None, results: dict[str, Any] | None) -> str:
    if record is None:  # a run from before run.json: results.json says how it ended, if it ended
        return str(results.get("status", "success")) if results is not None else "incomplete"
    status = str(record.get("status", "incomplete"))
    if status == "running" and record.get("host") == socket.gethostname() and not _alive(record.get("pid")):
        return "crashed"
    return status


def _seconds(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def read_run(path: Path) -> RunInfo:
    record, results = _json(path / "run.json"), _json(path / "results.json")
    monitor, mode = _monitored(path / "spec.yaml")
    best, epochs = _from_metrics(path / "metrics.csv", monitor, mode)
    started = _seconds(record.get("started")) if record else None
    if started is None:
        started = (path / "spec.yaml").stat().st_mtime if (path / "spec.yaml").exists() else path.stat().st_mtime
    duration = record.get("duration_s") if record else None
    if duration is None and results is not None:  # a run from before run.json: results.json is written at its end
        duration = (path / "results.json").stat().st_mtime - started
    if duration is None and _status(record, results) == "running":
        duration = datetime.now(timezone.utc).timestamp() - started
    if results is not None and isinstance(results.get("epochs"), int):
        epochs = results["epochs"]
    return RunInfo(name=path.parent.name, version=int(_VERSION.fullmatch(path.name).group(1)), path=path,
                   status=_status(record, results), started=started, duration_s=duration, epochs=epochs,
                   monitor=monitor, best=best)


def list_runs(root: Path, pattern: str = "*") -> list[RunInfo]:
    """Every run under `root` whose name matches `pattern` (a name or wildcard), newest first."""
    runs = []
    for name_dir in sorted(root.iterdir()) if root.is_dir() else []:
        if not name_dir.is_dir() or not fnmatch.fnmatchcase(name_dir.name, pattern):
            continue
        for path in name_dir.iterdir():
            if path.is_dir() and _VERSION.fullmatch(path.name):
                runs.append(read_run(path))
    return sorted(runs, key=lambda r: (r.started, r.version), reverse=True)


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def started_text(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")
