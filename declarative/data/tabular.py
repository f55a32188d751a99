"""CSV: a table of samples, one row each, read with the csv module into tensors.

How columns become tensors (per-column preprocessing, fitted on the training split, is in
declarative/data/columns.py):

- A column whose every value is a number (missing ones aside) is numeric; one with no numbers at
  all (or listed in ``categorical``) is categorical. A column with both is a typo somewhere: an
  error that names the file's line and the column. A word column that looks like free text (four
  words or more a value) or an identifier (a distinct value in every row, or more than
  ``max_categories``) is an error that asks what it is, rather than hundreds of one-hot features.
- Input columns give float32 (N, F): a numeric column gives one feature, a categorical one gives
  one-hot features, one per category (sorted). One-hot, not an index, because a layer list
  starts with Linear layers, to which an index would be a magnitude with a meaningless order.
  A text column gives int64 token ids (N, L), an image column uint8 images (N, C, H, W); either is
  the table's only input column.
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

from declarative.data.columns import COLUMN_SCHEMA, Column, category_order, is_missing, is_number
from declarative.data.fitted import FittedSource, Rows
from declarative.data.sources import SOURCES, SourceError, TensorSplit
from declarative.errors import did_you_mean
from declarative.registry import Entry, Param, first_line, signature_params

__all__ = ["CSV"]

_WHOLE = re.compile(r"\s*[+-]?\d+\s*")


class _Table:
    """A CSV file's header and rows, as strings; `line[i]` is row i's line in the file."""

    def __init__(self, file: Path, delimiter: str, names: list[str] | None = None, header: bool = True):
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
        if header:
            (_, self.header), *rows = records
        else:
            self.header, rows = [], records
        self.header = [name.strip() for name in (names or self.header)]
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





_TYPES = ("numeric", "categorical", "text", "image")
# A word column whose values average this many words is free text, not categories.
_TEXT_WORDS = 4


class CSV(FittedSource):
    """A CSV file, one sample per row, with per-column preprocessing fitted on the training split: split train.

    Input columns become float32 features (categorical ones one-hot), or token ids of a text
    column, or images of an image-path column; the target column becomes class indices, or float
    targets for regression (see docs/data.md).

    Args:
        path: The file, relative to the spec's folder; its first row names the columns (see ``header``).
        targets: The target column, or a list of them (multi-label or multi-output regression).
        inputs: The input columns, in order. Default: every column that is not a target.
        categorical: Columns to treat as categories even though they hold numbers (e.g. a zip code);
            columns without any number are categorical anyway.
        columns: Per-column settings: type, scale, missing, and text settings (docs/data.md).
        delimiter: The character between fields.
        header: Whether the first row names the columns; without one, ``names`` names them.
        names: The column names, in order; with ``header: true`` they replace the header's.
        max_categories: A word column with more categories than this is flagged, not one-hot encoded.
    """

    def __init__(self, path: str, targets: str | list[str], inputs: list[str] | None = None,
                 categorical: list[str] | None = None, columns: dict | None = None, delimiter: str = ",",
                 header: bool = True, names: list[str] | None = None, max_categories: int = 100):
        if len(delimiter) != 1:
            raise SourceError(f"delimiter is one character, not '{delimiter}'", "delimiter")
        if not header and not names:
            raise SourceError("header: false needs `names:`, the column names in order", "header")
        self.path = path
        self.targets = [targets] if isinstance(targets, str) else list(targets)
        if not self.targets:
            raise SourceError("targets names at least one column", "targets")
        self.inputs = inputs
        self.categorical = list(categorical or ())
        self.columns = {name: dict(settings or {}) for name, settings in (columns or {}).items()}
        self.delimiter = delimiter
        self.header = header
        self.names = names
        self.max_categories = max_categories
        self.resize = None  # an image column's read-time resize, set from the spec's transforms (splits.py)
        self._table: _Table | None = None

    # ------------------------------------------------------------------ reading

    def table(self) -> _Table:
        if self._table is None:
            file = Path(self.path)
            if not file.exists():
                raise SourceError(f"no such file: {file}", "path")
            if not file.is_file():
                raise SourceError(f"{file} is a folder; CSV reads one .csv file", "path")
            self._table = _Table(file, self.delimiter, self.names, self.header)
            for column in [*self.categorical, *self.columns]:
                self._table.index(column, "categorical" if column in self.categorical else "columns")
        return self._table

    def _columns(self, table: _Table) -> tuple[list[int], list[int]]:
        target_columns = [table.index(c, "targets") for c in self.targets]
        if self.inputs is None:
            input_columns = [i for i in range(len(table.header)) if i not in target_columns]
        else:
            input_columns = [table.index(c, "inputs") for c in self.inputs]
            if both := [table.header[i] for i in input_columns if i in target_columns]:
                raise SourceError(f"column '{both[0]}' is both an input and a target", "inputs")
        if not input_columns:
            raise SourceError(f"{table.file.name} has no columns left for inputs once the targets are taken", "targets")
        return input_columns, target_columns

    def _detected(self, table: _Table, column: int, is_input: bool) -> str:
        """'categorical', 'whole' or 'number' (or a written type); a column that mixes numbers and words is an
        error at its first odd value; an input word column that looks like free text or an identifier too."""
        name = table.header[column]
        written = self.columns.get(name, {}).get("type")
        if name in self.categorical or written == "categorical":
            return "categorical"
        if written in ("text", "image"):
            return written
        values = [v for v in table.values(column) if not is_missing(v)] if is_input else table.values(column)
        lines = [line for v, line in zip(table.values(column), table.line) if not is_input or not is_missing(v)]
        numbers = [is_number(v) for v in values]
        if written == "numeric" or (values and any(numbers)):
            if not all(numbers):
                bad = numbers.index(False)
                what = f"'{values[bad]}'" if values[bad] else "an empty field"
                raise SourceError(f"{table.file.name}:{lines[bad]}: column '{name}' has {what}, not a number "
                                  f"({sum(numbers)} of its {len(values)} values are numbers); fix the value, or "
                                  f"list the column in `categorical:` if it holds categories", "path")
            return "whole" if all(_WHOLE.fullmatch(v) for v in values) else "number"
        if is_input and values:
            distinct = len(set(values))
            words = sum(len(v.split()) for v in values) / len(values)
            if words >= _TEXT_WORDS:
                raise SourceError(f"column '{name}' looks like free text ({words:.1f} words a value); set "
                                  f"`columns: {{{name}: {{type: text}}}}` to read it as token ids, or leave it out "
                                  f"of `inputs:`", "path")
            if distinct > self.max_categories or (distinct == len(values) and len(values) >= 8):
                raise SourceError(f"column '{name}' has {distinct} distinct values in {len(values)} rows, too many "
                                  f"for one-hot categories (an identifier or free text?); leave it out of `inputs:`,"
                                  f" set `columns: {{{name}: {{type: text}}}}`, or `{{type: categorical}}` to one-hot "
                                  f"encode it anyway", "path")
        return "categorical"

    def rows(self, split: str) -> Rows:
        table = self.table()
        input_columns, target_columns = self._columns(table)
        for column in input_columns:  # the types, as the spec records them
            name = table.header[column]
            settings = self.columns.setdefault(name, {})
            if "type" not in settings:
                kind = self._detected(table, column, True)
                settings["type"] = "categorical" if kind == "categorical" else "numeric" if kind in (
                    "whole", "number") else kind
        special = [table.header[i] for i in input_columns if self.columns[table.header[i]]["type"] in ("text", "image")]
        if special and len(input_columns) > 1:
            kind = self.columns[special[0]]["type"]
            raise SourceError(f"column '{special[0]}' is a {kind} column, and a {kind} column is the table's only "
                              f"input; set `inputs: [{special[0]}]`", "inputs")
        return Rows(table, torch.arange(len(table.rows)), self._targets(table, target_columns))

    def _targets(self, table: _Table, columns: list[int]) -> torch.Tensor:
        for column in columns:
            for value, line in zip(table.values(column), table.line):
                if is_missing(value):
                    raise SourceError(f"{table.file.name}:{line}: target column '{table.header[column]}' has a "
                                      f"missing value; every sample needs its target", "path")
        kinds = [self._detected(table, c, False) for c in columns]
        if len(columns) == 1 and kinds[0] != "number":
            values = table.values(columns[0])
            if kinds[0] == "whole":
                return torch.from_numpy(np.array(values, dtype=np.int64))
            settings = self.columns.setdefault(table.header[columns[0]], {})
            categories = settings.setdefault("categories", category_order(values))
            number = {c: i for i, c in enumerate(categories)}
            if unknown := sorted(set(values) - set(number)):
                raise SourceError(f"target column '{table.header[columns[0]]}' has '{unknown[0]}', which is not one "
                                  f"of the classes the run was fitted on ({', '.join(categories)})", "path")
            return torch.tensor([number[v] for v in values], dtype=torch.int64)
        if "categorical" in kinds:
            name = table.header[columns[kinds.index("categorical")]]
            raise SourceError(f"target column '{name}' holds categories; with several target columns each must "
                              f"hold numbers (e.g. 0/1 per label)", "targets")
        values = np.array([table.values(c) for c in columns], dtype=np.float64).T
        if all(kind == "whole" for kind in kinds):  # 0/1 per label: int64, so the task reads as multilabel
            return torch.from_numpy(values.astype(np.int64))
        return torch.from_numpy(values).float()

    # ------------------------------------------------------------------ fitting and encoding

    def _input_names(self, table: _Table) -> list[str]:
        return [table.header[i] for i in self._columns(table)[0]]

    def _kept(self, rows: Rows) -> tuple[torch.Tensor, dict[str, list[str]]]:
        """The rows left once `missing: drop` columns drop theirs, and each input column's values in them;
        a missing value elsewhere that the spec does not account for is an error at its line."""
        table = rows.table
        index = rows.index.tolist()
        values = {}
        for name in self._input_names(self.table()):
            column = table.index(name, "inputs")
            values[name] = [table.rows[i][column].strip() for i in index]
        keep = [all(not (self.columns[n].get("missing") == "drop" and is_missing(values[n][r])) for n in values)
                for r in range(len(index))]
        lines = [table.line[i] for i, k in zip(index, keep) if k]
        for name in values:
            values[name] = [v for v, k in zip(values[name], keep) if k]
            Column(name, self.columns[name]).check_missing(values[name], lines, table.file.name)
        return torch.tensor(keep, dtype=torch.bool), values

    def fit(self, rows: Rows) -> None:
        _, values = self._kept(rows)
        for name, column_values in values.items():
            Column(name, self.columns[name]).fit(column_values)

    def encode(self, rows: Rows) -> TensorSplit:
        keep, values = self._kept(rows)
        if not bool(keep.any()):
            raise SourceError(f"{rows.table.file.name}: every row has a missing value in a `missing: drop` column",
                              "columns")
        folder = rows.table.file.parent
        features = [Column(name, self.columns[name]).encode(column_values,
                                                             lambda path: self._read_image(folder / path))
                    for name, column_values in values.items()]
        inputs = features[0] if len(features) == 1 else torch.cat(features, dim=1)
        return TensorSplit(inputs, rows.targets[keep])

    def _read_image(self, path: Path) -> torch.Tensor:
        from declarative.data.images import decode_image  # torchvision's: imported for image columns alone

        try:
            image = decode_image(path)
        except OSError as exc:  # absent, or not an image PIL can read
            raise SourceError(f"{path} is not an image file that can be read ({' '.join(str(exc).split())})",
                              "path") from None
        return self.resize(image) if self.resize is not None else image

    def fitted_kwargs(self) -> dict:
        kwargs = {"path": self.path, "targets": self.targets[0] if len(self.targets) == 1 else list(self.targets)}
        if self.inputs is not None:
            kwargs["inputs"] = list(self.inputs)
        if self.categorical:
            kwargs["categorical"] = list(self.categorical)
        kwargs["columns"] = {name: dict(settings) for name, settings in self.columns.items()}
        if self.delimiter != ",":
            kwargs["delimiter"] = self.delimiter
        if not self.header:
            kwargs["header"] = False
        if self.names:
            kwargs["names"] = list(self.names)
        if self.max_categories != 100:
            kwargs["max_categories"] = self.max_categories
        return kwargs

    def share_fit(self, train: "CSV") -> None:
        self.columns = train.columns

    @property
    def vocab_size(self) -> int | None:
        texts = [s for s in self.columns.values() if s.get("type") == "text" and "vocabulary" in s]
        return len(texts[0]["vocabulary"]) if texts else None


def _register() -> None:
    params = signature_params(CSV.__init__, constraints={"max_categories": {"minimum": 1}})
    params["columns"] = Param("columns", {"type": "object", "propertyNames": {"minLength": 1},
                                          "additionalProperties": COLUMN_SCHEMA,
                                          "description": "per-column settings, by column name"}, False)
    SOURCES.add(Entry("CSV", CSV, params, first_line(CSV.__doc__)))


_register()
