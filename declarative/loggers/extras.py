"""Loggers whose package is an optional extra: found when the logger is built, imported when it first logs."""

from __future__ import annotations

import importlib.util

__all__ = ["require"]


def require(module: str, extra: str) -> None:
    """A clear error, before the run starts, when `module` is not installed (the registry locates it in the spec)."""
    if importlib.util.find_spec(module) is None:
        raise RuntimeError(f"it needs the {module} package, which is not installed — pip install 'dtrain[{extra}]'")
