"""The logger interface the trainer writes to: scalars by step, hyperparameters once."""

from __future__ import annotations

from typing import Any

__all__ = ["Logger", "flatten_params", "scalar_items", "matrix_markdown"]


class Logger:
    """Base class for loggers; every method a no-op."""

    def log_hyperparams(self, params: dict[str, Any], metric_names: list[str]) -> None:
        """Record the run's settings (the resolved spec) and the names of the metrics it will log."""

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        """Record values at an optimizer step: floats, and nested lists for per-class values and matrices."""

    def purge(self, step: int) -> None:
        """A resumed run goes on from `step`: forget what was logged at it and after (it is logged again)."""

    def finalize(self, status: str) -> None:
        """Flush and close ("success", "failed" or "interrupted")."""


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
