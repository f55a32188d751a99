"""Building modules on the meta device without torch's Python initializers.

On the meta device a tensor has a shape and no data, so filling it (`nn.init.normal_`, `uniform_`, ...)
does nothing; but several of those fills run torch's Python reference kernels, whose first call imports
torch._dynamo and sympy (about a second and a half on a 2-core machine). `on_meta()` builds there with
the fills skipped: the same modules, parameters and shapes, without those imports. The initializers a
spec names (`model.init`, an item's `init`) still run there, inside `spec_initializer()`: their checks
(a fan-in of a 1-D tensor, ...) are what validation reports.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["on_meta", "spec_initializer"]

# Tensor methods that fill a tensor in place, as module constructors and nn.init call them.
_FILLS = {torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.fill_, torch.Tensor.zero_,
          torch.Tensor.exponential_, torch.Tensor.bernoulli_, torch.Tensor.random_}


_SPEC_INITIALIZER = contextvars.ContextVar("spec_initializer", default=False)


class _SkipMetaFills(TorchFunctionMode):
    """An initializer (any `torch.nn.init` function) or an in-place fill applied to a meta tensor returns it as it is."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        initializer = getattr(func, "__module__", None) == "torch.nn.init" and not _SPEC_INITIALIZER.get()
        if func in _FILLS or initializer:
            target = args[0] if args else kwargs.get("tensor")
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        return func(*args, **kwargs)


@contextlib.contextmanager
def on_meta() -> Iterator[Any]:
    """`with on_meta(): module = nn.Linear(...)`: as `with torch.device("meta")`, with the fills skipped."""
    with _SkipMetaFills(), torch.device("meta"):
        yield


@contextlib.contextmanager
def spec_initializer() -> Iterator[None]:
    """Runs an initializer the spec names in full, its checks and fills, on the meta device too."""
    token = _SPEC_INITIALIZER.set(True)
    try:
        yield
    finally:
        _SPEC_INITIALIZER.reset(token)
