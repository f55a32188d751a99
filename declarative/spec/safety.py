"""Values no spec may hold, whatever the schema of their place: non-finite numbers, unusable run names.

- NaN and infinity: `lr: .nan` would pass a bare `type: number` and train to `loss nan`; a
  setting whose default is infinite ("no limit") gets it by being left out.
- The run's name becomes a folder, runs/<name>/: one pattern and a length limit, for a name
  written in the spec and for one taken from the spec's file name alike, so that no name
  reaches outside runs/ (`..`) or past the file system's limit on a name.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterator

from declarative.errors import Problem
from declarative.spec.document import Document, PathKey
from declarative.spec.messages import _name

__all__ = ["RUN_NAME_PATTERN", "MAX_RUN_NAME", "non_finite_problems", "run_name_problems", "yaml_number"]

RUN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MAX_RUN_NAME = 100  # characters; file systems allow 255 bytes for a name, and paths get long


def yaml_number(value: float) -> str:
    """A float as YAML writes it: .nan, .inf, -.inf, or its repr."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return repr(value)


def _non_finite(value: Any, path: PathKey) -> Iterator[tuple[PathKey, float]]:
    if isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_finite(item, path + (index,))


def non_finite_problems(doc: Document) -> list[Problem]:
    """Every NaN or infinite number in the spec, at the line that wrote it."""
    problems = []
    for path, value in _non_finite(doc.data, ()):
        name = _name(path)
        problems.append(doc.problem(path, f"{name} is {yaml_number(value)}, but numbers in a spec must be finite — "
                                          f"leave a setting out for its default"))
    return problems


def run_name_problems(doc: Document) -> list[Problem]:
    """A run named after its file (no `name:`) needs a file name that is a usable run name."""
    if not isinstance(doc.data, dict) or "name" in doc.data:
        return []  # a written name is the schema's to check
    stem = Path(doc.file).stem
    if len(stem) <= MAX_RUN_NAME and re.match(RUN_NAME_PATTERN, stem):
        return []
    shown = stem if len(stem) <= 40 else stem[:40] + "..."
    return [doc.problem((), f"the run is named after the file, but '{shown}' cannot name a run folder (letters, "
                            f"digits, '.', '_' and '-', starting with a letter or digit, at most {MAX_RUN_NAME} "
                            f"characters) — add name: to the spec")]
