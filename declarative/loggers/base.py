"""The logger interface the trainer writes to: scalars by step, hyperparameters once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["Logger", "flatten_params", "scalar_items", "matrix_markdown", "log_folder", "add_prefix",
           "write_hparams_yaml", "LOGGER_JOIN_CHAR"]

LOGGER_JOIN_CHAR = "-"  # between a logger's prefix and a metric's name, as Lightning joins them


class Logger:
    """Base class for loggers; every method a no-op."""

    def start(self) -> None:
        """Begin logging, before the run trains: a logger to a service starts its run here, so that a service
        that refuses stops the run before it begins."""

    def log_hyperparams(self, params: dict[str, Any], metric_names: list[str]) -> None:
        """Record the run's settings (the resolved spec) and the names of the metrics it will log."""

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        """Record values at an optimizer step: floats, and nested lists for per-class values and matrices."""

    def purge(self, step: int) -> None:
        """A resumed run goes on from `step`: forget what was logged at it and after (it is logged again)."""

    def finalize(self, status: str) -> None:
        """Flush and close ("success", "failed" or "interrupted")."""


def log_folder(save_dir: str | os.PathLike, *parts: int | str | None) -> Path:
    """Where a logger writes: `save_dir` (the run folder), then each given part of `name`, `version`, `sub_dir`.

    An int version is `version_<N>`, as Lightning names them. Each part is one plain folder name, so a
    logger writes inside its run folder and nowhere else (a new run folder has none of them yet: nothing
    of an earlier run is overwritten)."""
    folder = Path(save_dir)
    for part in parts:
        if part is None or part == "":
            continue
        name = f"version_{part}" if isinstance(part, int) and not isinstance(part, bool) else str(part)
        if name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"'{name}' is not a folder name — name, version and sub_dir are plain folder names "
                             "inside the run folder (no '/', no '..')")
        if folder == Path(save_dir) and name == "checkpoints":
            raise ValueError("'checkpoints' is the run folder's checkpoint folder — choose another name")
        folder /= name
    return folder


def add_prefix(metrics: dict[str, Any], prefix: str) -> dict[str, Any]:
    """`{"train/loss": 1}` with prefix `exp` → `{"exp-train/loss": 1}`; `epoch`, the loop's counter, keeps its name."""
    if not prefix:
        return metrics
    return {(name if name == "epoch" else f"{prefix}{LOGGER_JOIN_CHAR}{name}"): value for name, value in metrics.items()}


def write_hparams_yaml(folder: Path, params: dict[str, Any]) -> None:
    """`hparams.yaml` beside the logs, as Lightning writes it: the hyperparameters as logged (here the resolved spec)."""
    import yaml

    from declarative.training.checkpoint import atomic_write

    text = yaml.safe_dump(params, sort_keys=False)
    atomic_write(folder / "hparams.yaml", lambda file: file.write(text.encode("utf-8")))


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """`{"trainer": {"max_epochs": 3}}` → `{"trainer/max_epochs": 3}`; lists and None become strings."""
    flat: dict[str, bool | int | float | str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_params(value, prefix=f"{name}/"))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def scalar_items(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    """Logged values as scalars: numbers as they are, per-class lists as `<name>/<class>`; matrices left out."""
    items: list[tuple[str, Any]] = []
    for name, value in metrics.items():
        if not isinstance(value, list):
            items.append((name, value))
        elif all(not isinstance(v, list) for v in value):
            items.extend((f"{name}/{index}", v) for index, v in enumerate(value))
    return items


def matrix_markdown(matrix: list) -> str:
    """A confusion matrix (rows: targets, columns: predictions) as a Markdown table; `(L, 2, 2)` one per label."""
    if matrix and isinstance(matrix[0][0], list):
        return "\n\n".join(f"label {index}\n\n" + matrix_markdown(m) for index, m in enumerate(matrix))
    header = "| target \\ predicted | " + " | ".join(str(i) for i in range(len(matrix[0]))) + " |"
    rule = "|---" * (len(matrix[0]) + 1) + "|"
    rows = [f"| {i} | " + " | ".join(f"{v:g}" for v in row) + " |" for i, row in enumerate(matrix)]
    return "\n".join([header, rule, *rows])
