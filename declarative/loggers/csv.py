"""CSVLogger: metrics.csv and hparams.yaml in the run directory, one row per logged step or epoch."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from declarative.loggers.base import Logger, add_prefix, log_folder, scalar_items, write_hparams_yaml

__all__ = ["CSVLogger"]


class CSVLogger(Logger):
    """Log scalars to ``metrics.csv``: columns ``step``, ``epoch`` and one per metric; settings to ``hparams.yaml``.

    A metric that first appears later (``val/loss`` after the first training steps) adds a column;
    the file is then rewritten with the wider header, as Lightning's CSVLogger does. The files go into
    the run folder, or into ``<run folder>/<name>/<version>`` when those are given (Lightning's
    ``save_dir/name/version``, with the run folder as ``save_dir``).

    Args:
        name: A sub-folder of the run folder for metrics.csv and hparams.yaml; none by default.
        version: A sub-folder below `name`: an int N is ``version_N``, a string is the folder's name.
        prefix: Put ``<prefix>-`` before every metric name (the ``step`` and ``epoch`` columns keep theirs).
        flush_logs_every_n_steps: Write the rows to disk at most every N steps, and at the end. Lightning's default
            is 100; dtrain's is 1, so that the file shows a run as it goes and a killed run's resume keeps every
            row up to its checkpoint (rows still in memory when a process is killed are lost).
    """

    NAME_METRICS_FILE = "metrics.csv"

    def __init__(self, save_dir: str, name: str | None = None, version: int | str | None = None, prefix: str = "",
                 flush_logs_every_n_steps: int = 1):
        self.save_dir = save_dir
        self.log_dir = log_folder(save_dir, name, version)
        self.path = self.log_dir / self.NAME_METRICS_FILE
        self.prefix = prefix
        self.flush_logs_every_n_steps = flush_logs_every_n_steps
        self.columns = ["step", "epoch"]
        self._rows: list[dict[str, Any]] = []  # logged, not yet on disk
        self._flushed_step: int | None = None

    def log_hyperparams(self, params: dict[str, Any], metric_names: list[str]) -> None:
        """`hparams.yaml`: the resolved spec, as Lightning's CSVLogger writes the hyperparameters."""
        write_hparams_yaml(self.log_dir, params)

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        """Scalars as columns; per-class values as `<name>/<class>` columns; matrices are left to results.json."""
        self._rows.append({"step": step, **dict(scalar_items(add_prefix(metrics, self.prefix)))})
        every = self.flush_logs_every_n_steps
        if every <= 1 or self._flushed_step is None or step - self._flushed_step >= every:
            self.save()
            self._flushed_step = step

    def save(self) -> None:
        """Write the rows logged since the last save (Lightning's `save`)."""
        rows, self._rows = self._rows, []
        if not rows:
            return
        new = list(dict.fromkeys(name for row in rows for name in row if name not in self.columns))
        if new or not self.path.exists():
            self.columns += new
            self._rewrite_with_header()
        with open(self.path, "a", newline="", encoding="utf-8") as file:
            csv.DictWriter(file, fieldnames=self.columns).writerows(rows)

    def finalize(self, status: str) -> None:
        self.save()

    def purge(self, step: int) -> None:
        """A resumed run: drop the rows logged at `step` and after (the run logs them again), keep the columns."""
        self._rows = [row for row in self._rows if row["step"] < step]
        self.save()
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
        self.log_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)  # a crash mid-rewrite keeps the old file
