"""ModelSummary and RichModelSummary: how deep the model summary table at fit start goes, as Lightning's callbacks.

The table is the model plan's (layers as the spec names them, output shapes, parameter counts:
declarative/model/summary.py), printed by process 0 when fit starts. Listing one of these replaces the
default summary of `trainer.enable_model_summary`, as in Lightning: one table, at the depth asked for.
"""

from __future__ import annotations

from typing import Any, Iterable

from declarative.callbacks.base import Callback

__all__ = ["ModelSummary", "RichModelSummary", "summary_depth"]


class ModelSummary(Callback):
    """Print the model summary table when fit starts, down to `max_depth` levels of nested layers.

    Args:
        max_depth: how many levels of nesting the table shows: 1 the items of model.layers, 2 also the layers
            inside them (residual, parallel, repeat, blocks), -1 every level, 0 no summary. Default: 1
    """

    def __init__(self, max_depth: int = 1):
        if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < -1:
            raise ValueError(f"max_depth must be an integer >= -1 (-1: every level, 0: no summary), but got "
                             f"max_depth={max_depth!r}")
        self.max_depth = max_depth


class RichModelSummary(ModelSummary):
    """Print the model summary table when fit starts (dtrain's table is a rich one already).

    Args:
        max_depth: how many levels of nesting the table shows: 1 the items of model.layers, 2 also the layers
            inside them, -1 every level, 0 no summary. Default: 1
    """


def summary_depth(enable_model_summary: bool, callbacks: Iterable[Any]) -> int:
    """How deep fit's summary table goes (0: none): a listed ModelSummary's max_depth, which replaces the default
    table; else every level when enable_model_summary is on."""
    listed = [cb for cb in callbacks if isinstance(cb, ModelSummary)]
    if listed:
        return listed[0].max_depth
    return -1 if enable_model_summary else 0
