"""torch.load for files a user hands dtrain (checkpoints, .pt data): weights only, plain reasons.

`weights_only=True` never runs pickled code. When a file cannot be read, torch's message advises
`weights_only=False`, which dtrain never does; `UnreadableFile` keeps only the reason.
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


def _unpickler_reason(exc: Exception) -> str:
    found = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\.?\s*Please use|\n\n|Check the documentation|$)",
                      str(exc), re.S)
    reason = " ".join((found.group(1) if found else str(exc).splitlines()[0]).split()).rstrip(".")
    return reason or type(exc).__name__


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
        raise UnreadableFile(reason, pickled_objects="global" in reason.lower()) from None
    except Exception as exc:  # a corrupt or foreign file fails deep inside the unpickler, with any error
        raise UnreadableFile(type(exc).__name__) from None
