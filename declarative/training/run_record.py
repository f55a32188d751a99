"""run.json: a run's status and timing, written when it starts and again when it ends.

    {"status": "running" | "success" | "failed" | "interrupted", "started": ISO time (UTC),
     "finished": ISO time, "duration_s": seconds, "host": ..., "pid": ...}

A run that crashed hard (killed, out of memory) keeps "running"; `dtrain runs` tells it from one
still going by its process, when it ran on this host.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from declarative.training.checkpoint import atomic_write

RECORD = "run.json"


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def _write(path: Path, record: dict[str, Any]) -> None:
    text = json.dumps(record, indent=2) + "\n"
    atomic_write(path / RECORD, lambda file: file.write(text.encode("utf-8")))


class RunRecord:
    """The run.json of one run folder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.started = time.time()
        self.record = {"status": "running", "started": _iso(self.started), "host": socket.gethostname(),
                       "pid": os.getpid()}

    @classmethod
    def start(cls, path: Path) -> "RunRecord":
        record = cls(path)
        _write(record.path, record.record)
        return record

    def finish(self, status: str) -> None:
        """The run's end: its status (success, failed, interrupted) and how long it took."""
        if not self.path.is_dir():  # a rejected run's folder is gone
            return
        ended = time.time()
        _write(self.path, {**self.record, "status": status, "finished": _iso(ended),
                           "duration_s": round(ended - self.started, 3)})
