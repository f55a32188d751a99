"""channels_last: the model's 4-D weights and the input batches in NHWC order, as torchvision's classification
recipe trains (`--channels-last`); convolutions on recent GPUs run faster so, above all under mixed precision.

    trainer: {precision: bf16-mixed, channels_last: true}

It wraps the run's precision plugin: the module conversion and the input conversion gain one
`.to(memory_format=torch.channels_last)` each; the rest is the plugin's own.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["ChannelsLast", "with_memory_format"]


class ChannelsLast:
    """A precision plugin whose modules and 4-D input batches are in channels_last memory format."""

    def __init__(self, precision: Any):
        self.precision = precision

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return self.precision.convert_module(module).to(memory_format=torch.channels_last)

    def convert_input(self, data: Any) -> Any:
        data = self.precision.convert_input(data)
        if isinstance(data, (tuple, list)) and data and isinstance(data[0], torch.Tensor) and data[0].ndim == 4:
            return type(data)([data[0].contiguous(memory_format=torch.channels_last), *data[1:]])
        return data

    def __getattr__(self, name: str) -> Any:  # forward_context, backward, optimizer_step, ...
        return getattr(self.precision, name)


def with_memory_format(precision: Any, channels_last: bool) -> Any:
    return ChannelsLast(precision) if channels_last else precision
