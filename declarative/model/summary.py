"""A model plan as a table: each layer (nested ones indented), its output shape and parameter count.

`dtrain summary` prints it, and so does `dtrain run` at fit start unless `trainer.enable_model_summary: false`
(Lightning's ModelSummary); a listed `ModelSummary` / `RichModelSummary` callback sets how deep it goes.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from declarative.model.builder import ModelPlan, shape_text

__all__ = ["print_summary", "summary_table"]


def summary_table(plan: ModelPlan, title: str, max_depth: int = -1) -> Table:
    """Rows for the layers nested at most `max_depth` levels deep (1: the items of model.layers; -1: all)."""
    table = Table(title=title, title_justify="left")
    table.add_column("#", no_wrap=True)
    table.add_column("layer", no_wrap=True)
    table.add_column("output shape", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_row("", "input", shape_text(plan.input_shape), "")
    for depth, node in plan.walk():  # nested nodes indented, under their dotted module names
        if 0 <= max_depth <= depth:
            continue
        inferred = ", ".join(f"{k}={v}" for k, v in node.inferred.items())
        label = "  " * depth + node.component.name + (f" ({inferred})" if inferred else "")
        wiring = node.component.wiring
        if wiring.get("input") is not None:
            reads = wiring["input"]
            label += " ← " + (reads if isinstance(reads, str) else ", ".join(reads))
        if wiring.get("output") is not None:
            picks = wiring["output"] if isinstance(wiring["output"], list) else [wiring["output"]]
            label += "".join(f"[{i}]" for i in picks)
        if wiring.get("name"):
            label += f" → {wiring['name']}"
        table.add_row(node.name, label, shape_text(node.output_shape), f"{node.parameters:,}")
    return table


def print_summary(console: Console, plan: ModelPlan, title: str, max_depth: int = -1) -> None:
    """The table (layers down to `max_depth` levels, -1: all), then total, trainable and non-trainable parameter
    counts and their size."""
    wide = console if console.is_terminal else Console(file=console.file, width=200, highlight=False)  # piped: whole rows
    wide.print(summary_table(plan, title, max_depth))
    for line in (f"Total params: {plan.parameters:,}", f"Trainable params: {plan.trainable:,}",
                 f"Non-trainable params: {plan.parameters - plan.trainable:,}",
                 f"Params size (float32): {plan.parameters * 4 / 1e6:.2f} MB"):
        console.print(line, markup=False, highlight=False)
