"""CSVLogger: metrics.csv in the run directory, one row per logged step or epoch."""

from __future__ import annotations

import csv
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

    def _rewrite_with_header(self) -> None:
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
