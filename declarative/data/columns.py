"""Per-column preprocessing of a table, fitted on the training split.

Each input column is one of four types, detected or written in `columns: {name: {type: ...}}`:

- numeric: one float feature; `scale: standard` subtracts the mean and divides by the std,
  `scale: minmax` maps [min, max] to [0, 1];
- categorical: one-hot features, one per category of the training split; a category the
  training split never had is all zeros (the unknown bucket);
- text: int64 token ids (declarative/data/text.py), the table's only input column;
- image: the column holds image file paths (relative to the table's folder), read as uint8
  (C, H, W) images, the table's only input column.

A missing value (an empty field, NA, N/A, NaN, null, ?) is an error unless the column says what it
means: `missing: drop` (the row goes), `mean`, `median`, `mode` or `constant` (with
`fill_value`), or `indicator` (filled with the mean, or the mode, plus a 0/1 feature that says
the value was missing).

What is fitted (the type, means, stds, minima, maxima, fill values, categories, vocabularies)
is written into the column's settings, so the spec a run records, and its checkpoints, rebuild
the same preprocessing without refitting. `Column` does this for one column.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from declarative.data.sources import SourceError
from declarative.data.text import TEXT_SETTINGS, TextEncoder

__all__ = ["COLUMN_SCHEMA", "MISSING_VALUES", "Column", "is_missing", "is_number", "category_order"]

MISSING_VALUES = frozenset({"", "na", "n/a", "nan", "null", "?"})
_FILLS = ("mean", "median", "mode", "constant", "indicator")

COLUMN_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "How one column becomes features; fitted values are recorded by the run.",
    "properties": {
        "type": {"enum": ["numeric", "categorical", "text", "image"],
                 "description": "default: numeric when every value is a number, else categorical"},
        "scale": {"enum": ["none", "standard", "minmax"], "default": "none"},
        "missing": {"enum": ["error", "drop", *_FILLS], "default": "error",
                    "description": "what an empty field (or NA, NaN, null, ?) means"},
        "fill_value": {"type": ["number", "string"], "description": "the value a missing one takes"},
        "mean": {"type": "number"}, "std": {"type": "number", "exclusiveMinimum": 0},
        "min": {"type": "number"}, "max": {"type": "number"},
        "categories": {"type": "array", "items": {"type": "string"},
                       "description": "the categories, fitted on the training split"},
        **TEXT_SETTINGS,
    },
}
_TEXT_KEYS = tuple(TEXT_SETTINGS)


def is_missing(text: str) -> bool:
    return text.strip().lower() in MISSING_VALUES


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity")


def category_order(values) -> list[str]:
    """Distinct values, sorted as numbers when they all are, else as text."""
    distinct = set(values)
    return sorted(distinct, key=float) if all(map(is_number, distinct)) else sorted(distinct)


def _rounded(value: float) -> float:
    return float(f"{value:.7g}")


@dataclass
class Column:
    """One input column's settings (as written, then fitted) and how its values become features.

    Args:
        name: The column's name.
        settings: Its entry of the source's `columns:`; `fit` adds what it computes.
    """

    name: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str | None:
        return self.settings.get("type")

    @property
    def missing(self) -> str:
        return self.settings.get("missing", "error")

    def text_encoder(self) -> TextEncoder:
        return TextEncoder(**{k: self.settings[k] for k in _TEXT_KEYS if k in self.settings})

    def check_missing(self, values: list[str], lines: list[int], file: str) -> None:
        if self.missing != "error":
            return
        for value, line in zip(values, lines):
            if is_missing(value):
                what = f"'{value.strip()}'" if value.strip() else "an empty field"
                raise SourceError(f"{file}:{line}: column '{self.name}' has {what} (a missing value); fill it, "
                                  f"or say what it means: `columns: {{{self.name}: {{missing: mean}}}}` (or drop, "
                                  f"median, mode, constant with fill_value, indicator)", "path")

    def _present(self, values: list[str]) -> list[str]:
        return [v for v in values if not is_missing(v)]

    def fit(self, values: list[str]) -> None:
        """Compute what the settings leave out from the training split's values (missing ones are skipped)."""
        s = self.settings
        present = self._present(values)
        if not present and (self.type != "image"):
            raise SourceError(f"column '{self.name}' has no values in the training split to fit on", "path")
        if self.type == "numeric":
            numbers = np.array([float(v) for v in present], dtype=np.float64)
            if s.get("scale") == "standard" and not ("mean" in s and "std" in s):
                std = float(numbers.std(ddof=1)) if len(numbers) > 1 else 0.0
                s.setdefault("mean", _rounded(float(numbers.mean())))
                s.setdefault("std", _rounded(std) if std > 0 else 1.0)  # a constant column stays constant, at 0
            if s.get("scale") == "minmax" and not ("min" in s and "max" in s):
                s.setdefault("min", _rounded(float(numbers.min())))
                s.setdefault("max", _rounded(float(numbers.max())))
            if self.missing in _FILLS and "fill_value" not in s:
                how = {"mean": np.mean, "indicator": np.mean, "median": np.median}.get(self.missing)
                s["fill_value"] = _rounded(float(how(numbers))) if how else float(statistics.mode(numbers))
        elif self.type == "categorical":
            if self.missing in ("mode", "indicator") and "fill_value" not in s:
                s["fill_value"] = statistics.mode(sorted(present))
            s.setdefault("categories", category_order(present))
        elif self.type == "text":
            encoder = self.text_encoder()
            encoder.fit(present)
            s.update(encoder.settings())
        if self.missing == "constant" and "fill_value" not in s:
            raise SourceError(f"column '{self.name}': missing: constant needs `fill_value:`", "columns")

    def _filled(self, values: list[str]) -> list[str]:
        if self.missing not in _FILLS:
            return values
        fill = str(self.settings["fill_value"])
        return [fill if is_missing(v) else v for v in values]

    def encode(self, values: list[str], read_image=None) -> torch.Tensor:
        """The column's features for these values (rows with a dropped missing value already gone)."""
        s = self.settings
        filled = self._filled(values)
        if self.type == "numeric":
            x = torch.from_numpy(np.array(filled, dtype=np.float64))
            if s.get("scale") == "standard":
                x = (x - s["mean"]) / s["std"]
            elif s.get("scale") == "minmax":
                span = s["max"] - s["min"]
                x = (x - s["min"]) / (span if span else 1.0)
            features = x.float().unsqueeze(1)
        elif self.type == "categorical":
            number = {c: i for i, c in enumerate(s["categories"])}
            index = torch.tensor([number.get(v, -1) for v in filled], dtype=torch.int64)
            # One column more, then cut: an unknown value (-1 → the last one) is all zeros.
            features = torch.nn.functional.one_hot(index % (len(number) + 1), len(number) + 1)[:, :len(number)].float()
        elif self.type == "text":
            return self.text_encoder().encode(filled)
        else:
            return torch.stack([read_image(v) for v in values])
        if self.missing == "indicator":
            features = torch.cat([features, torch.tensor([[float(is_missing(v))] for v in values])], dim=1)
        return features
