"""The logger interface the trainer writes to: scalars by step, hyperparameters once."""

from __future__ import annotations

from typing import Any

__all__ = ["Logger", "flatten_params"]


class Logger:
    """Base class for loggers; every method a no-op."""

    def log_hyperparams(self, params: dict[str, Any], metric_names: list[str]) -> None:
        """Record the run's settings (the resolved spec) and the names of the metrics it will log."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Record scalars at an optimizer step."""

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
