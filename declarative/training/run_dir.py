"""Run directories: `<root>/<name>/version_<N>/`, one per run, never shared.

    runs/digits/version_0/
      spec.yaml        the run's record (written by whoever assembled the run)
      checkpoints/     ModelCheckpoint's files
      results.json     final validation and test metrics, the best checkpoint
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from declarative.training.checkpoint import atomic_write, remove_stale_temps
from declarative.training.errors import MisconfigurationError

__all__ = ["RunDir"]

_VERSION = re.compile(r"version_(\d+)")


def _next_version(parent: Path) -> int:
    """One past the highest existing version, as Lightning numbers them."""
    versions = [int(m.group(1)) for p in parent.iterdir() if p.is_dir() and (m := _VERSION.fullmatch(p.name))]
    return max(versions, default=-1) + 1


@dataclass(frozen=True)
class RunDir:
    """One run's folder."""

    path: Path

    @classmethod
    def create(cls, root: str | os.PathLike, name: str, record: str = "") -> "RunDir":
        """Make the next free `<root>/<name>/version_<N>` folder, with `record` as its spec.yaml."""
        parent = Path(root).resolve() / name  # absolute: results.json paths work anywhere
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only place, a file where a folder should be, a full disk
            raise MisconfigurationError(f"cannot make the run folder {parent}: {exc.strerror or exc}",
                                        ("trainer", "default_root_dir")) from None
        for earlier in parent.glob("version_*"):  # what saves of earlier runs, killed mid-write, left
            remove_stale_temps(earlier)
            remove_stale_temps(earlier / "checkpoints")
        version = _next_version(parent)
        while True:  # another run may take a number between our look and our mkdir
            try:
                os.mkdir(parent / f"version_{version}")
                break
            except FileExistsError:
                version += 1
        run_dir = cls(parent / f"version_{version}")
        run_dir.checkpoints.mkdir()
        if record:
            run_dir.write_record(record)
        return run_dir

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def write_record(self, text: str) -> None:
        atomic_write(self.path / "spec.yaml", lambda file: file.write(text.encode("utf-8")))

    def write_results(self, results: dict[str, Any]) -> None:
        text = json.dumps(results, indent=2) + "\n"
        atomic_write(self.path / "results.json", lambda file: file.write(text.encode("utf-8")))
