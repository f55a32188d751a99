"""TextFolder: a folder of class folders of .txt files, one sample per file, as token ids."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from declarative.data.fitted import FittedSource, Rows
from declarative.data.sources import SOURCES, SourceError, TensorSplit
from declarative.data.text import TEXT_SETTINGS, TextEncoder
from declarative.registry import Entry, Param, first_line

__all__ = ["TextFolder"]


class _Texts:
    """The files' texts, and where they came from (for errors)."""

    def __init__(self, files: list[Path], texts: list[str]):
        self.files = files
        self.texts = texts


class TextFolder(FittedSource):
    """Text files in class folders (``root/<class>/<name>.txt``), read as int64 token ids: split train.

    Class indices follow the sorted class folder names, as ImageFolder numbers them. Each file is
    one sample: its tokens looked up in a vocabulary fitted on the training split (see docs/data.md).

    Args:
        root: The folder of class folders.
        tokenizer: word (words and punctuation marks) or char (characters).
        lowercase: Lowercase the text first.
        max_length: Tokens per sample, cut or padded with <pad>; default: the longest training text.
        min_freq: A token seen fewer times in the training split is <unk>.
        max_tokens: Keep at most this many tokens, the most frequent.
        vocabulary: The tokens, as the run records them after fitting.
    """

    def __init__(self, root: str, tokenizer: Literal["word", "char"] = "word", lowercase: bool = True,
                 max_length: int | None = None, min_freq: int = 1, max_tokens: int | None = None,
                 vocabulary: list[str] | None = None):
        self.root = root
        self.encoder = TextEncoder(tokenizer, lowercase, max_length, min_freq, max_tokens,
                                   list(vocabulary) if vocabulary is not None else None)

    def rows(self, split: str) -> Rows:
        root = Path(self.root)
        if not root.is_dir():
            raise SourceError(f"no such folder: {root}" if not root.exists() else
                              f"{root} is a file; TextFolder reads a folder of class folders", "root")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        files = [(path, index) for index, name in enumerate(classes) for path in sorted((root / name).glob("*.txt"))]
        if not files:
            raise SourceError(f"{root} has no root/<class>/<name>.txt files — TextFolder reads e.g. "
                              f"root/sports/001.txt", "root")
        texts = []
        for path, _ in files:
            try:
                texts.append(path.read_text(encoding="utf-8"))
            except UnicodeDecodeError:
                raise SourceError(f"{path} is not UTF-8 text", "root") from None
        targets = torch.tensor([index for _, index in files], dtype=torch.int64)
        return Rows(_Texts([p for p, _ in files], texts), torch.arange(len(files)), targets)

    def _texts(self, rows: Rows) -> list[str]:
        return [rows.table.texts[i] for i in rows.index.tolist()]

    def fit(self, rows: Rows) -> None:
        self.encoder.fit(self._texts(rows))

    def encode(self, rows: Rows) -> TensorSplit:
        return TensorSplit(self.encoder.encode(self._texts(rows)), rows.targets)

    def fitted_kwargs(self) -> dict:
        return {"root": self.root, **self.encoder.settings()}

    @property
    def vocab_size(self) -> int | None:
        return self.encoder.vocab_size if self.encoder.vocabulary is not None else None

    def share_fit(self, train: "TextFolder") -> None:
        self.encoder = train.encoder


SOURCES.add(Entry("TextFolder", TextFolder, {
    "root": Param("root", {"type": "string", "description": "The folder of class folders of .txt files."}, True),
    **{name: Param(name, schema, False) for name, schema in TEXT_SETTINGS.items()},
}, first_line(TextFolder.__doc__)))
