"""Text as token ids: a tokenizer and a vocabulary fitted on the training split.

A text becomes int64 ids of shape (L,), L = `max_length`: its tokens (words, or characters)
looked up in the vocabulary, cut at `max_length` and padded with `<pad>` (id 0) after the end;
a token the vocabulary lacks is `<unk>` (id 1). The vocabulary is the training split's tokens
seen at least `min_freq` times, most frequent first (ties in alphabetical order), at most
`max_tokens` of them. Fitted once; its tokens (and the length, when it was left out) are
recorded in the spec, so a run rebuilt from its spec.yaml or checkpoint maps text to the same ids.

Our own code rather than a tokenizer library: the two tokenizers are a regular expression and
`list()`, and the vocabulary a Counter; torchtext is no longer maintained, and the Hugging Face
tokenizers would add a dependency for subword models that a vocabulary recorded in the spec
cannot hold.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Literal

import torch

__all__ = ["PAD", "UNK", "TextEncoder", "TEXT_SETTINGS"]

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"\w+|[^\w\s]")  # words, and each punctuation mark as a token of its own

# The settings a text column (or a text source) takes, with their JSON schema.
TEXT_SETTINGS = {
    "tokenizer": {"enum": ["word", "char"], "default": "word",
                  "description": "word: words and punctuation marks; char: each character"},
    "lowercase": {"type": "boolean", "default": True},
    "max_length": {"type": "integer", "minimum": 1,
                   "description": "tokens per sample, cut or padded; default: the longest training text"},
    "min_freq": {"type": "integer", "minimum": 1, "default": 1,
                 "description": "a token seen fewer times in the training split is <unk>"},
    "max_tokens": {"type": "integer", "minimum": 1, "description": "at most this many tokens, the most frequent"},
    "vocabulary": {"type": "array", "items": {"type": "string"},
                   "description": "the tokens, fitted on the training split and recorded by the run"},
}


@dataclass
class TextEncoder:
    """Tokenizes texts and maps them to ids; `fit` builds the vocabulary when it was not given."""

    tokenizer: Literal["word", "char"] = "word"
    lowercase: bool = True
    max_length: int | None = None
    min_freq: int = 1
    max_tokens: int | None = None
    vocabulary: list[str] | None = None

    def tokens(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        return list(text) if self.tokenizer == "char" else _WORD.findall(text)

    @property
    def fitted(self) -> bool:
        return self.vocabulary is not None and self.max_length is not None

    def fit(self, texts: Iterable[str]) -> None:
        tokenized = [self.tokens(t) for t in texts]
        if self.vocabulary is None:
            counts = Counter(token for tokens in tokenized for token in tokens)
            kept = sorted((t for t, c in counts.items() if c >= self.min_freq), key=lambda t: (-counts[t], t))
            self.vocabulary = [PAD, UNK] + kept[:self.max_tokens]
        if self.max_length is None:
            self.max_length = max((len(tokens) for tokens in tokenized), default=1) or 1

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def encode(self, texts: list[str]) -> torch.Tensor:
        """(N, max_length) int64 ids."""
        index = {token: i for i, token in enumerate(self.vocabulary)}
        unk = index.get(UNK, 1)
        out = torch.zeros((len(texts), self.max_length), dtype=torch.int64)  # 0: <pad>
        for row, text in enumerate(texts):
            ids = [index.get(token, unk) for token in self.tokens(text)[:self.max_length]]
            out[row, :len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return out

    def settings(self) -> dict:
        """What the spec records: every setting, the fitted ones included."""
        out = {"tokenizer": self.tokenizer, "lowercase": self.lowercase, "max_length": self.max_length,
               "min_freq": self.min_freq}
        if self.max_tokens is not None:
            out["max_tokens"] = self.max_tokens
        out["vocabulary"] = list(self.vocabulary)
        return out
