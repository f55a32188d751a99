"""Windows: a time series cut into (lookback → horizon) samples, for forecasting.

The series is a CSV (a header row, one time step a row, in time order) or a .npy array of
shape (T,) or (T, F). Sample i reads the `lookback` steps from i·stride as its inputs,
float32 (lookback, F), and the `horizon` steps after them, of the target columns, as its
targets, float32 (horizon·K,): a regression target, one value per step and target column.
Windows keep the series' order, so `val: {fraction: 0.2, order: last}` validates on the
latest part of the series.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from declarative.data.columns import is_number
from declarative.data.sources import SOURCES, Source, SourceError, TensorSplit, _read_npy
from declarative.data.tabular import _Table

__all__ = ["Windows"]


class Windows(Source):
    """Sliding windows over a time series (CSV or .npy): inputs (lookback, F), targets (horizon·K,): split train.

    Args:
        path: The series: a CSV with a header row, one time step a row, or a .npy array (T,) or (T, F).
        lookback: Time steps each sample sees.
        horizon: Time steps after them that it forecasts.
        stride: Steps between the starts of two windows.
        columns: CSV: the columns the inputs hold, in order. Default: every column (all numbers).
        targets: CSV: the columns forecast; .npy: their indices. Default: every input column.
        delimiter: CSV: the character between fields.
    """

    def __init__(self, path: str, lookback: int, horizon: int = 1, stride: int = 1,
                 columns: list[str] | None = None, targets: list[str | int] | None = None, delimiter: str = ","):
        for name, value in (("lookback", lookback), ("horizon", horizon), ("stride", stride)):
            if value < 1:
                raise SourceError(f"{name} is a number of time steps, at least 1, not {value}", name)
        self.path = path
        self.lookback, self.horizon, self.stride = lookback, horizon, stride
        self.columns = columns
        self.targets = targets
        self.delimiter = delimiter

    def _series(self) -> tuple[torch.Tensor, list[int]]:
        """The series (T, F) in float32, and the indices of the target columns."""
        file = Path(self.path)
        if not file.is_file():
            raise SourceError(f"no such file: {file}", "path")
        if file.suffix.lower() == ".npy":
            series = _read_npy(file, "path").double()
            series = series.unsqueeze(1) if series.dim() == 1 else series
            if series.dim() != 2:
                raise SourceError(f"{file.name} holds an array of shape {list(series.shape)}; a series is (T,) or "
                                  f"(T, F)", "path")
            names = [str(i) for i in range(series.shape[1])]
            wanted = [int(t) if str(t).isdigit() else -1 for t in (self.targets or range(series.shape[1]))]
            if any(not 0 <= t < series.shape[1] for t in wanted):
                raise SourceError(f"targets of a .npy series are column indices 0..{series.shape[1] - 1}", "targets")
            return series.float(), wanted
        table = _Table(file, self.delimiter)
        columns = [table.index(c, "columns") for c in self.columns] if self.columns else list(range(len(table.header)))
        for column in columns:
            for value, line in zip(table.values(column), table.line):
                if not is_number(value):
                    raise SourceError(f"{file.name}:{line}: column '{table.header[column]}' has '{value}', not a "
                                      f"number; a series holds numbers (list its columns in `columns:`)", "path")
        names = [table.header[c] for c in columns]
        wanted = []
        for target in self.targets or names:
            if str(target) not in names:
                raise SourceError(f"target column '{target}' is not one of the series' columns "
                                  f"({', '.join(names)})", "targets")
            wanted.append(names.index(str(target)))
        values = np.array([table.values(c) for c in columns], dtype=np.float64).T
        return torch.from_numpy(values).float(), wanted

    def load(self, split: str) -> TensorSplit:
        series, targets = self._series()
        span = self.lookback + self.horizon
        if len(series) < span:
            raise SourceError(f"the series has {len(series)} time steps, fewer than lookback + horizon = {span}",
                              "lookback")
        starts = torch.arange(0, len(series) - span + 1, self.stride)
        steps = starts[:, None] + torch.arange(span)  # (N, lookback + horizon)
        windows = series[steps]  # (N, lookback + horizon, F)
        inputs = windows[:, :self.lookback]
        future = windows[:, self.lookback:, targets]  # (N, horizon, K)
        return TensorSplit(inputs.contiguous(), future.reshape(len(starts), -1))


SOURCES.add_class(Windows, constraints={"lookback": {"minimum": 1}, "horizon": {"minimum": 1},
                                        "stride": {"minimum": 1}})
