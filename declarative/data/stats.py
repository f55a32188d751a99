"""Normalization statistics from the training split: `Normalize: {mean: auto, std: auto}`.

The per-channel mean and std (dim 1 of a batch) are computed once, over the whole training
split after the transforms that come before Normalize in its list, in float64. They replace
`auto` in the spec's component, so the resolved spec a run records (and a checkpoint embeds)
holds the numbers, and rebuilding from it reproduces the same Normalize without recomputing.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from declarative.data.augment import Pipeline, is_random
from declarative.data.transforms import AUTO, TRANSFORMS, _AUTO_ARGUMENTS

__all__ = ["build_with_stats", "channel_stats"]

# Significant digits kept in the recorded statistics.
_DIGITS = 7


def channel_stats(batches: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (Bessel-corrected, as torch.std) of each channel (dim 1) over every batch, in float64."""
    total = total_sq = None
    count = 0
    for x in batches:
        x = x.as_subclass(torch.Tensor).to(torch.float64)
        dims = [d for d in range(x.dim()) if d != 1]
        if total is None:
            total, total_sq = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device), \
                torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
        total += x.sum(dims)
        total_sq += (x * x).sum(dims)
        count += x.numel() // x.shape[1]
    mean = total / count
    var = (total_sq - count * mean * mean) / max(count - 1, 1)
    return mean.cpu(), var.clamp_min(0).sqrt().cpu()


def _rounded(values: torch.Tensor) -> list[float]:
    return [float(f"{v:.{_DIGITS}g}") for v in values.tolist()]


def build_with_stats(spec, components: list, train_inputs: Callable[[], Iterable[torch.Tensor]]) -> list[torch.nn.Module]:
    """Build the transforms `components` names, filling any `auto` statistics from the training split.

    Args:
        spec: The typed spec, for located errors; an `auto` component's kwargs are replaced by the numbers.
        components: `spec.data.transforms` or `spec.data.train_transforms`.
        train_inputs: Yields the training split's inputs, a batch at a time, on the device.
    """
    built: list[torch.nn.Module] = []
    for component in components:
        auto = [name for name in _AUTO_ARGUMENTS.get(component.name, ()) if component.kwargs.get(name) == AUTO]
        if auto:
            before = [c for c, t in zip(components, built) if is_random(t)]
            if before:
                raise spec.error(component.path + (component.name, auto[0]),
                                 f"{auto[0]}: auto is computed through the transforms before {component.name}, "
                                 f"and {before[0].name} is random; move {component.name} before it, or "
                                 f"into data.transforms")
            preceding = Pipeline(built)
            generator = torch.Generator()  # unused: the preceding transforms are deterministic
            mean, std = channel_stats(preceding(x, generator) if preceding else x for x in train_inputs())
            if "std" in auto and bool((std == 0).any()):
                channel = int(torch.nonzero(std == 0)[0])
                raise spec.error(component.path + (component.name, "std"),
                                 f"std: auto — channel {channel} of the training data is constant (std 0), "
                                 f"so it cannot be normalized; set std yourself")
            computed = {"mean": _rounded(mean), "std": _rounded(std)}
            component.kwargs = {**component.kwargs, **{name: computed[name] for name in auto}}
        built.append(TRANSFORMS.build_component(component, spec))
    return built
