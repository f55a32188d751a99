"""torch functions as layers: `reshape`, `permute`, `cat`, `mean`, `select`, ...

Each keeps torch's lowercase name and argument names, and torch's meaning: shapes and dims count
the batch dim (`permute: {dims: [0, 2, 1]}` swaps the last two dims of an (N, L, H) batch).
The ones that combine tensors (`add`, `mul`, `matmul`, `cat`, `stack`) take the outputs an item's
`input:` names, or the branches of a `parallel`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from declarative.registry import Entry, Param

_INT = {"type": "integer"}
_INTS = {"type": "array", "items": {"type": "integer"}, "minItems": 1}
_DIMS = {"anyOf": [_INT, _INTS]}


class TorchFunction(nn.Module):
    """A torch function with its keyword arguments bound; the inputs come from the graph."""

    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())


class Reshape(TorchFunction):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.reshape(x, self.kwargs["shape"])


class View(TorchFunction):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(self.kwargs["size"])


class Permute(TorchFunction):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.kwargs["dims"])


class Transpose(TorchFunction):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.transpose(x, self.kwargs["dim0"], self.kwargs["dim1"])


class Squeeze(TorchFunction):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = self.kwargs.get("dim")
        return torch.squeeze(x) if dim is None else torch.squeeze(x, dim)


class Unsqueeze(TorchFunction):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.unsqueeze(x, self.kwargs["dim"])


class Reduce(TorchFunction):
    """mean / sum / amax over dims."""

    function = staticmethod(torch.mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x, dim=self.kwargs["dim"], keepdim=self.kwargs.get("keepdim", False))


class Mean(Reduce):
    function = staticmethod(torch.mean)


class Sum(Reduce):
    function = staticmethod(torch.sum)


class Amax(Reduce):
    function = staticmethod(torch.amax)


class Select(TorchFunction):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.select(x, self.kwargs["dim"], self.kwargs["index"])


class Narrow(TorchFunction):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.narrow(x, self.kwargs["dim"], self.kwargs["start"], self.kwargs["length"])


class PaddingMask(TorchFunction):
    """True where a token id is the padding id: the `src_key_padding_mask` of TransformerEncoderLayer."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return ids == self.kwargs.get("padding_idx", 0)


class Add(TorchFunction):
    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        out = tensors[0]
        for t in tensors[1:]:
            out = out + t
        return out


class Mul(TorchFunction):
    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        out = tensors[0]
        for t in tensors[1:]:
            out = out * t
        return out


class Matmul(TorchFunction):
    def forward(self, input: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return torch.matmul(input, other)


class Cat(TorchFunction):
    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return torch.cat(tensors, dim=self.kwargs.get("dim", 0))


class Stack(TorchFunction):
    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return torch.stack(tensors, dim=self.kwargs.get("dim", 0))


def _param(name: str, schema: dict, required: bool = True, default=None) -> Param:
    schema = dict(schema)
    if not required:
        schema["default"] = default
    return Param(name, schema, required)


def _entries() -> list[Entry]:
    dim = _param("dim", _INT)
    keepdim = _param("keepdim", {"type": "boolean"}, False, False)
    reduce_dim = _param("dim", _DIMS)
    return [
        Entry("reshape", Reshape, {"shape": _param("shape", _INTS)},
              "torch.reshape: the same values in a new shape, batch dim included (-1 infers one dim)."),
        Entry("view", View, {"size": _param("size", _INTS)},
              "Tensor.view: a view of the same memory in a new shape, batch dim included."),
        Entry("permute", Permute, {"dims": _param("dims", _INTS)},
              "torch.permute: reorder the dims, batch dim included, e.g. [0, 2, 1]."),
        Entry("transpose", Transpose, {"dim0": _param("dim0", _INT), "dim1": _param("dim1", _INT)},
              "torch.transpose: swap two dims."),
        Entry("squeeze", Squeeze, {"dim": _param("dim", _DIMS, False, None)},
              "torch.squeeze: drop dims of size 1."),
        Entry("unsqueeze", Unsqueeze, {"dim": dim}, "torch.unsqueeze: insert a dim of size 1."),
        Entry("mean", Mean, {"dim": reduce_dim, "keepdim": keepdim}, "torch.mean over dims, e.g. mean pooling."),
        Entry("sum", Sum, {"dim": reduce_dim, "keepdim": keepdim}, "torch.sum over dims."),
        Entry("amax", Amax, {"dim": reduce_dim, "keepdim": keepdim}, "torch.amax: the maximum over dims."),
        Entry("select", Select, {"dim": dim, "index": _param("index", _INT)},
              "torch.select: one index of a dim, e.g. the last time step or the CLS token."),
        Entry("narrow", Narrow, {"dim": dim, "start": _param("start", _INT), "length": _param("length", _INT)},
              "torch.narrow: a slice start:start+length of a dim."),
        Entry("padding_mask", PaddingMask, {"padding_idx": _param("padding_idx", _INT, False, 0)},
              "ids == padding_idx: True at <pad> tokens, (N, L) — a TransformerEncoderLayer's second input."),
        Entry("add", Add, {}, "torch.add of the item's inputs (x + y + ...)."),
        Entry("mul", Mul, {}, "torch.mul of the item's inputs (x * y * ...)."),
        Entry("matmul", Matmul, {}, "torch.matmul of the item's two inputs."),
        Entry("cat", Cat, {"dim": _param("dim", _INT, False, 0)}, "torch.cat of the item's inputs along a dim."),
        Entry("stack", Stack, {"dim": _param("dim", _INT, False, 0)},
              "torch.stack of the item's inputs along a new dim."),
    ]


# The functions that combine several inputs: a plain chain cannot feed them.
MULTI_INPUT = {"add", "mul", "matmul", "cat", "stack"}

FUNCTIONS = _entries()
