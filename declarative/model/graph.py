"""The modules a spec builds: layer lists, residuals, parallel branches.

A layer list is a `LayerList`. When none of its items is wired (`name`, `input`, `output`), it is a
chain and runs as one: one Python call per layer, nothing else (`benchmarks/model_forward.py`).
A wired list keeps the named outputs its later items read. State-dict keys follow the spec's nesting:
`layers.3.layers.0.weight` is the first layer inside the residual at item 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass(frozen=True)
class Wiring:
    """How one item of a layer list connects: the names it reads (None: the previous output), the tuple
    element it keeps, and the name its output is kept under."""

    inputs: tuple[str, ...] | None = None
    output: tuple[int, ...] = ()
    name: str | None = None


class LayerList(nn.ModuleList):
    """A layer list: each item reads the previous item's output unless its wiring says otherwise."""

    def __init__(self, layers: list[nn.Module], wiring: list[Wiring] | None = None):
        super().__init__(layers)
        # None for a plain chain: the fast path
        self.wiring = wiring if wiring and any(w != Wiring() for w in wiring) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.wiring is None:
            for layer in self:  # one Python call per node, nothing else
                x = layer(x)
            return x
        kept = {}
        for layer, wiring in zip(self, self.wiring):
            x = layer(x) if wiring.inputs is None else layer(*[kept[name] for name in wiring.inputs])
            for index in wiring.output:
                x = x[index]
            if wiring.name is not None:
                kept[wiring.name] = x
        return x


class Residual(nn.Module):
    """`layers(x) + x`, or `layers(x) + shortcut(x)` with a projection shortcut."""

    def __init__(self, layers: LayerList, shortcut: LayerList | None = None):
        super().__init__()
        self.layers = layers
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x) + (x if self.shortcut is None else self.shortcut(x))


class Parallel(nn.Module):
    """Branches that each read the input, combined by `merge` (add, cat, ...)."""

    def __init__(self, branches: list[LayerList], merge: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.merge = merge

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(*[branch(x) for branch in self.branches])


class SpecModel(nn.Module):
    """The model of a spec. State-dict keys are `layers.<i>.*`, as an nn.Sequential's would be under the
    name `layers`, so weights move between dtrain and hand-written code easily."""

    def __init__(self, layers: list[nn.Module] | LayerList, wiring: list[Wiring] | None = None):
        super().__init__()
        self.layers = layers if isinstance(layers, LayerList) else LayerList(layers, wiring)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = self.layers
        if layers.wiring is None:  # a chain: the loop right here, no call in between
            for layer in layers:
                x = layer(x)
            return x
        return layers(x)
