"""The module a spec builds: its layers as nodes, run in order.

A plain layer list is a chain: each node reads the output of the one before it. The graph
constructs (residuals, branches, named skips) become nodes that read several earlier outputs;
they extend `SpecModel.forward` without changing how specs, plans or state dicts look.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class SpecModel(nn.Module):
    """Runs its layers in order. State-dict keys are `layers.<i>.*`, as an nn.Sequential's would be
    under the name `layers`, so weights move between dtrain and hand-written code easily."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:  # one Python call per node, nothing else
            x = layer(x)
        return x
