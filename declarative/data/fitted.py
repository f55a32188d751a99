"""Sources whose encoding is fitted on the training split: tables with preprocessing, text.

Such a source hands out `Rows` (its raw samples, not yet tensors). The splits are carved from
them (declarative/data/splits.py), the source is fitted on the training rows alone, and only
then is every split encoded into a `TensorSplit`. What the fit found is written back into the
source's spec component (`fitted_kwargs`), so the spec a run records and its checkpoints rebuild
the same encoding without fitting again.
"""

from __future__ import annotations

from typing import Any

import torch

from declarative.data.sources import Source, TensorSplit

__all__ = ["Rows", "FittedSource"]


class Rows:
    """Some samples of a fitted source, raw: `index` picks rows of the source's `table`.

    `targets` are encoded already (class indices need no fit), so stratified carving reads them.
    """

    def __init__(self, table: Any, index: torch.Tensor, targets: torch.Tensor):
        self.table = table
        self.index = index
        self.targets = targets

    def __len__(self) -> int:
        return len(self.index)

    def subset(self, index: torch.Tensor) -> "Rows":
        return Rows(self.table, self.index[index], self.targets[index])


class FittedSource(Source):
    """Base class of sources fitted on the training split; `load` fits on the split it loads."""

    def rows(self, split: str) -> Rows:
        raise NotImplementedError

    def fit(self, rows: Rows) -> None:
        """Compute what the settings leave out from these (training) rows; what is given stays."""
        raise NotImplementedError

    def encode(self, rows: Rows) -> TensorSplit:
        """The rows as tensors, by the fitted settings; `rows` may come from another source of the same kind
        (a separate test file), which is encoded as this one's training split was."""
        raise NotImplementedError

    def fitted_kwargs(self) -> dict:
        """The source's keyword arguments with what the fit found, as the spec records them."""
        raise NotImplementedError

    def share_fit(self, train: "FittedSource") -> None:
        """Take the training source's settings and fit (a val or test split from a file of its own)."""

    @property
    def vocab_size(self) -> int | None:
        """Tokens in the vocabulary of a text input (`${data.vocab_size}`); None without text."""
        return None

    def load(self, split: str) -> TensorSplit:
        rows = self.rows(split)
        self.fit(rows)
        return self.encode(rows)
