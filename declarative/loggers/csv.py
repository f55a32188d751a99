"""CSVLogger: metrics.csv in the run directory, one row per logged step or epoch."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from declarative.loggers.base import Logger, scalar_items

__all__ = ["CSVLogger"]


class CSVLogger(Logger):
    """Log scalars to ``metrics.csv``: columns ``step``, ``epoch`` and one per metric.

    A metric that first appears later (``val/loss`` after the first training steps) adds a column;
    the file is then rewritten with the wider header, as Lightning's CSVLogger does.
    """

    NAME_METRICS_FILE = "metrics.csv"

    def __init__(self, save_dir: str):
        self.save_dir = save_dir
        self.path = Path(save_dir) / self.NAME_METRICS_FILE
        self.columns = ["step", "epoch"]

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        """Scalars as columns; per-class values as `<name>/<class>` columns; matrices are left to results.json."""
        row = {"step": step, **dict(scalar_items(metrics))}
        new = [name for name in row if name not in self.columns]
        if new or not self.path.exists():
            self.columns += new
            self._rewrite_with_header()
        with open(self.path, "a", newline="", encoding="utf-8") as file:
            csv.DictWriter(file, fieldnames=self.columns).writerow(row)

    def purge(self, step: int) -> None:
        """A resumed run: drop the rows logged at `step` and after (the run logs them again), keep the columns."""
        if not self.path.exists():
            return
        text = self.path.read_text(encoding="utf-8")
        if not text.endswith("\n"):  # a row cut short by a kill
            text = text[:text.rfind("\n") + 1]
        reader = csv.DictReader(io.StringIO(text, newline=""))
        self.columns = list(reader.fieldnames or self.columns)
        self._rewrite_with_header([row for row in reader if int(row["step"]) < step])

    def _rewrite_with_header(self, rows: list[dict] | None = None) -> None:
        if rows is None:
            rows = []
            if self.path.exists():
                with open(self.path, newline="", encoding="utf-8") as file:
                    rows = list(csv.DictReader(file))
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)  # a crash mid-rewrite keeps the old file
