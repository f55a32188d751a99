"""torch.load for files a user hands dtrain (checkpoints, .pt data): weights only, plain reasons.

`weights_only=True` never runs pickled code. When a file cannot be read, torch's message advises
`weights_only=False` (or allowlisting globals), which would run what the file holds: dtrain never
does, and never suggests it. `UnreadableFile` keeps only the reason.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from typing import Any

import torch


class UnreadableFile(Exception):
    """A file torch.load refuses or cannot parse; `pickled_objects` when it holds Python objects."""

    def __init__(self, reason: str, pickled_objects: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.pickled_objects = pickled_objects


# Sentences of torch's message that advise loading the file another way (`weights_only=False`, an
# allowlist of globals): the way to run what the file holds, which dtrain never suggests.
_ADVICE = re.compile(r"weights_only|add_safe_globals|safe_globals|trusted source|Please file an issue|"
                     r"Check the documentation|two options|Weights only load failed|allowlist", re.I)


def _unpickler_reason(exc: Exception) -> str:
    """What the unpickler refused, without torch's advice on how to load the file anyway."""
    text = str(exc)
    marker = text.find("WeightsUnpickler error:")
    if marker >= 0:
        text = text[marker + len("WeightsUnpickler error:"):]
    sentences = re.split(r"(?<=[.!?])\s+|\n\s*\n", text)
    kept = [" ".join(s.split()) for s in sentences if s.strip() and not _ADVICE.search(s)]
    reason = " ".join(kept).strip().rstrip(".")
    return reason or type(exc).__name__


def _holds_objects(reason: str) -> bool:
    """Whether a refusal is of pickled Python objects (a global: a class or a function), not of a broken file."""
    return "global" in reason.lower()


def load_weights_only(path: str | os.PathLike) -> Any:
    """`torch.load(path, weights_only=True)` onto the CPU. FileNotFoundError and IsADirectoryError pass
    through for the caller to word; anything else that fails is an UnreadableFile."""
    try:
        with warnings.catch_warnings():  # torch's notes on a foreign file's pickle protocol: noise here
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError):
        raise
    except pickle.UnpicklingError as exc:
        reason = _unpickler_reason(exc)
        raise UnreadableFile(reason, pickled_objects=_holds_objects(reason)) from None
    except Exception as exc:  # a corrupt or foreign file fails deep inside the unpickler, with any error
        raise UnreadableFile(type(exc).__name__) from None
