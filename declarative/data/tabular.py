"""CSV: a table of samples, one row each, read with the csv module into tensors.

How columns become tensors:

- A column whose every value is a number is numeric; one with no numbers at all (or listed in
  ``categorical``) is categorical. A column with both is a typo somewhere: an error that names
  the file's line and the column.
- Input columns give float32 (N, F): a numeric column gives one feature, a categorical one gives
  one-hot features, one per category (sorted). One-hot, not an index, because a layer list
  starts with Linear layers, to which an index would be a magnitude with a meaningless order.
- One target column that is categorical or all whole numbers gives int64 class indices (N,):
  whole numbers as they are, categories numbered in sorted order. A target column with
  fractions gives float32 (N, 1), for regression. Several target columns give float32 (N, K):
  multi-label 0/1 targets or multi-output regression.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import torch

from declarative.data.sources import SOURCES, Source, SourceError, TensorSplit
from declarative.errors import did_you_mean

__all__ = ["CSV"]

_WHOLE = re.compile(r"\s*[+-]?\d+\s*")


class _Table:
    """A CSV file's header and rows, as strings; `line[i]` is row i's line in the file."""

    def __init__(self, file: Path, delimiter: str):
        self.file = file
        try:
            text = file.read_text(encoding="utf-8-sig")  # -sig: a spreadsheet's byte-order mark is no column name
        except UnicodeDecodeError:
            raise SourceError(f"{file.name} is not a CSV file (not UTF-8 text)", "path") from None
        if "\0" in text:
            raise SourceError(f"{file.name} is not a CSV file (it holds binary data)", "path")
        reader = csv.reader(text.splitlines(), delimiter=delimiter)
        try:
            records = [(reader.line_num, row) for row in reader if row]
        except csv.Error as exc:
            raise SourceError(f"{file.name}:{reader.line_num}: not valid CSV ({exc})", "path") from None
        if not records:
            raise SourceError(f"{file.name} is empty; a CSV source needs a header row of column names", "path")
        (_, self.header), *rows = records
        self.header = [name.strip() for name in self.header]
        if not rows:
            raise SourceError(f"{file.name} has a header but no rows", "path")
        for line, row in rows:
            if len(row) != len(self.header):
                raise SourceError(f"{file.name}:{line}: {len(row)} fields, but the header has {len(self.header)} "
                                  f"columns (is `delimiter: '{delimiter}'` right?)", "path")
        self.line = [line for line, _ in rows]
        self.rows = [row for _, row in rows]

    def index(self, column: str, argument: str) -> int:
        if column not in self.header:
            hint = did_you_mean(column, self.header)
            raise SourceError(f"{self.file.name} has no column '{column}'" + (f" — {hint}" if hint else "")
                              + f" (its columns: {', '.join(self.header)})", argument)
        return self.header.index(column)

    def values(self, column: int) -> list[str]:
        return [row[column].strip() for row in self.rows]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity")


def _category_order(values: list[str]) -> list[str]:
    """A column's categories in index order: sorted, as numbers when they all are."""
    return sorted(set(values), key=float) if all(map(_is_number, values)) else sorted(set(values))


def _category_index(values: list[str]) -> tuple[torch.Tensor, int]:
    """Each value's category index, categories in `_category_order`, and the category count."""
    categories = _category_order(values)
    number = {c: i for i, c in enumerate(categories)}
    return torch.tensor([number[v] for v in values], dtype=torch.int64), len(categories)


class CSV(Source):
    """A CSV file with a header row, one sample per row: split train.

    Input columns become float32 features (categorical ones one-hot); the target column becomes
    class indices, or float targets for regression (see the CSV section of the README).

    Args:
        path: The file, relative to the spec's folder; its first row names the columns.
        targets: The target column, or a list of them (multi-label or multi-output regression).
        inputs: The input columns, in order. Default: every column that is not a target.
        categorical: Columns to treat as categories even though they hold numbers (e.g. a zip code);
            columns without any number are categorical anyway.
        delimiter: The character between fields.
    """

    def __init__(self, path: str, targets: str | list[str], inputs: list[str] | None = None,
                 categorical: list[str] | None = None, delimiter: str = ","):
        if len(delimiter) != 1:
            raise SourceError(f"delimiter is one character, not '{delimiter}'", "delimiter")
        self.path = path
        self.targets = [targets] if isinstance(targets, str) else list(targets)
        if not self.targets:
            raise SourceError("targets names at least one column", "targets")
        self.inputs = inputs
        self.categorical = set(categorical or ())
        self.delimiter = delimiter

    def load(self, split: str) -> TensorSplit:
        file = Path(self.path)
        if not file.exists():
            raise SourceError(f"no such file: {file}", "path")
        if not file.is_file():
            raise SourceError(f"{file} is a folder; CSV reads one .csv file", "path")
        table = _Table(file, self.delimiter)
        for column in self.categorical:
            table.index(column, "categorical")
        target_columns = [table.index(c, "targets") for c in self.targets]
        if self.inputs is None:
            input_columns = [i for i in range(len(table.header)) if i not in target_columns]
        else:
            input_columns = [table.index(c, "inputs") for c in self.inputs]
            if both := [table.header[i] for i in input_columns if i in target_columns]:
                raise SourceError(f"column '{both[0]}' is both an input and a target", "inputs")
        if not input_columns:
            raise SourceError(f"{file.name} has no columns left for inputs once the targets are taken", "targets")
        inputs = torch.cat([self._feature(table, i) for i in input_columns], dim=1)
        return TensorSplit(inputs, self._targets(table, target_columns))

    def _kind(self, table: _Table, column: int) -> str:
        """'categorical', 'whole' or 'number'; a column that mixes numbers and words is an error at its first odd value."""
        name = table.header[column]
        values = table.values(column)
        if name in self.categorical:
            return "categorical"
        numbers = [_is_number(v) for v in values]
        if not any(numbers):
            return "categorical"
        if not all(numbers):
            bad = numbers.index(False)
            counted = sum(numbers)
            what = f"'{values[bad]}'" if values[bad] else "an empty field"
            raise SourceError(f"{table.file.name}:{table.line[bad]}: column '{name}' has {what}, not a number "
                              f"({counted} of its {len(values)} values are numbers); fix the value, or list the "
                              f"column in `categorical:` if it holds categories", "path")
        return "whole" if all(_WHOLE.fullmatch(v) for v in values) else "number"

    def _feature(self, table: _Table, column: int) -> torch.Tensor:
        values = table.values(column)
        if self._kind(table, column) == "categorical":
            index, count = _category_index(values)
            return torch.nn.functional.one_hot(index, count).float()
        return torch.from_numpy(np.array(values, dtype=np.float64)).float().unsqueeze(1)

    def _targets(self, table: _Table, columns: list[int]) -> torch.Tensor:
        kinds = [self._kind(table, c) for c in columns]
        if len(columns) == 1 and kinds[0] != "number":
            values = table.values(columns[0])
            if kinds[0] == "whole":
                return torch.from_numpy(np.array(values, dtype=np.int64))
            return _category_index(values)[0]
        if "categorical" in kinds:
            name = table.header[columns[kinds.index("categorical")]]
            raise SourceError(f"target column '{name}' holds categories; with several target columns each must "
                              f"hold numbers (e.g. 0/1 per label)", "targets")
        values = np.array([table.values(c) for c in columns], dtype=np.float64).T
        if all(kind == "whole" for kind in kinds):  # 0/1 per label: int64, so the task reads as multilabel
            return torch.from_numpy(values.astype(np.int64))
        return torch.from_numpy(values).float()


SOURCES.add_class(CSV)
