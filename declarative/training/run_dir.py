"""Run directories: `<default_root_dir>/<name>/version_<N>/`, one per run, never shared.

    runs/digits/version_0/
      spec.yaml        the resolved spec (headed by the values its ${data.*} references took)
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

import yaml

from declarative.spec.config import Spec
from declarative.training.checkpoint import atomic_write, remove_stale_temps, used_data_values

__all__ = ["RunDir", "spec_text"]

_VERSION = re.compile(r"version_(\d+)")


def _next_version(parent: Path) -> int:
    """One past the highest existing version, as Lightning numbers them."""
    versions = [int(m.group(1)) for p in parent.iterdir() if p.is_dir() and (m := _VERSION.fullmatch(p.name))]
    return max(versions, default=-1) + 1


def spec_text(spec: Spec) -> str:
    """The resolved spec as YAML, headed by the values its `${data.*}` references took (the references stay)."""
    record = spec.to_dict()
    values = used_data_values(spec, record)
    return "".join(f"# ${{{name}}} = {value}\n" for name, value in values.items()) + yaml.safe_dump(record, sort_keys=False)


@dataclass(frozen=True)
class RunDir:
    """One run's folder."""

    path: Path

    @classmethod
    def create(cls, spec: Spec) -> "RunDir":
        """Make the next free `version_<N>` folder and write the resolved spec into it."""
        parent = Path(spec.trainer.default_root_dir).resolve() / spec.name  # absolute: results.json paths work anywhere
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only place, a file where a folder should be, a full disk
            raise spec.error(("trainer", "default_root_dir"), f"cannot make the run folder {parent}: "
                                                               f"{exc.strerror or exc}") from None
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
        run_dir.write_spec(spec)
        return run_dir

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def write_spec(self, spec: Spec) -> None:
        text = spec_text(spec)
        atomic_write(self.path / "spec.yaml", lambda file: file.write(text.encode("utf-8")))

    def write_results(self, results: dict[str, Any]) -> None:
        text = json.dumps(results, indent=2) + "\n"
        atomic_write(self.path / "results.json", lambda file: file.write(text.encode("utf-8")))
