"""Remembered `dtrain validate` outcomes, so a pre-commit hook over unchanged specs takes no torch import.

An outcome is the lines validation printed for one spec file and whether it failed. It is found
again only when everything it depended on is the same: the spec's text and the path it was given
as, the data files the spec names (size and modification time), and the versions of dtrain, torch
and torchvision (for a source checkout, also the times of dtrain's own files and schema).

Entries live in the user's cache folder (DTRAIN_CACHE_DIR, else XDG_CACHE_HOME/dtrain,
~/Library/Caches/dtrain, %LOCALAPPDATA%/dtrain/Cache or ~/.cache/dtrain), one small JSON file per
key. Each is written to a temporary file and renamed into place, so two runs that write at once
never leave a half-written entry, and the reader of a damaged one validates again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = 1  # bump when an entry's meaning changes
PACKAGE_DIR = Path(__file__).resolve().parents[1]
CHECKOUT_SCHEMA = PACKAGE_DIR.parent / "schemas" / "spec.schema.json"


def cache_dir() -> Path:
    """The folder for dtrain's cache, following each platform's convention."""
    if os.environ.get("DTRAIN_CACHE_DIR"):
        return Path(os.environ["DTRAIN_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "dtrain"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "dtrain"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "dtrain" / "Cache"
    return Path.home() / ".cache" / "dtrain"


def _version(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def _stamp(path: Path | str) -> list[Any]:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return [str(path), None]
    return [str(path), info.st_size, info.st_mtime_ns]


def _code_stamp() -> list[Any]:
    """Versions, and for an editable checkout the times of dtrain's files: its code can change under one version."""
    stamps = [_version("dtrain"), _version("torch"), _version("torchvision")]
    sources = sorted(PACKAGE_DIR.rglob("*.py")) + [CHECKOUT_SCHEMA, PACKAGE_DIR / "spec.schema.json"]
    return stamps + [_stamp(p)[1:] for p in sources]


# A word of the spec's text: what sits between spaces and YAML's punctuation. Reading the text, not
# parsing it, keeps a cache hit cheap; a word that only happens to name a file adds a stamp, never hides one.
_WORD = re.compile(r"[^\s,\[\]{}'\"#]*[A-Za-z0-9][^\s,\[\]{}'\"#]*")
_COMMENT = re.compile(r"(^|\s)#.*$", re.MULTILINE)


def _data_stamps(spec_path: Path, text: str) -> list[Any]:
    """Size and time of every file or folder the spec names (a folder: its entries too, one level down,
    where an ImageFolder's classes or a data set's files are)."""
    stamps = []
    folders = sorted({str(spec_path.parent), os.getcwd()})
    for word in sorted({w.rstrip(":") for w in _WORD.findall(_COMMENT.sub("", text))}):
        for candidate in sorted({os.path.join(folder, word) for folder in folders}):
            try:
                mode = os.stat(candidate).st_mode
                stamps.append(_stamp(candidate))
                if stat.S_ISDIR(mode):
                    stamps.extend(_stamp(entry.path) for entry in sorted(os.scandir(candidate), key=lambda e: e.name))
            except (OSError, ValueError):  # absent or unreadable, or a word too long or odd for a path
                continue
    return stamps


@dataclass
class Outcome:
    lines: list[str]
    failed: bool


class ValidateCache:
    """Outcomes of `dtrain validate`, by a key of everything the outcome depends on."""

    def __init__(self, mode: str, *, enabled: bool = True):
        self.enabled = enabled
        self.folder = cache_dir() / "validate"
        self._base = [FORMAT, mode, _code_stamp()] if enabled else []

    def key(self, spec_path: Path) -> str | None:
        """The key for this spec as it is now; None when it cannot be read (validation reports that)."""
        try:
            text = spec_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        parts = [self._base, str(spec_path), str(spec_path.resolve()), text, _data_stamps(spec_path.resolve(), text)]
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()

    def get(self, key: str | None) -> Outcome | None:
        if not self.enabled or key is None:
            return None
        try:
            entry = json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))
            return Outcome(lines=[str(line) for line in entry["lines"]], failed=bool(entry["failed"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent or damaged: validate again

    def put(self, key: str | None, outcome: Outcome) -> None:
        """Write atomically; a cache that cannot be written (read-only home, full disk) is skipped."""
        if not self.enabled or key is None:
            return
        temporary = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump({"lines": outcome.lines, "failed": outcome.failed}, file)
            os.replace(temporary, self.folder / f"{key}.json")
        except OSError:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
