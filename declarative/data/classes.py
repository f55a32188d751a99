"""What a data set's targets say about its classes: `${data.num_classes}` and the target range.

Kept apart from the data stage so that `dtrain validate` can count a data set's classes without
importing torchvision.
"""

from __future__ import annotations

import torch

__all__ = ["is_multilabel", "num_classes", "target_range"]


def is_multilabel(t: torch.Tensor) -> bool:
    """0/1 (or bool) rows of two or more labels, (N, L): one score per label, not a class index."""
    return t.dim() == 2 and t.shape[1] > 1 and (t.dtype == torch.bool or bool(((t == 0) | (t == 1)).all()))


def target_range(targets: list[torch.Tensor]) -> tuple[int, int] | None:
    """The smallest and largest integer target over the splits (read at build time); None for float targets."""
    if any(t.is_floating_point() or t.is_complex() for t in targets):
        return None
    return int(min(t.min() for t in targets)), int(max(t.max() for t in targets))


def num_classes(targets: list[torch.Tensor]) -> int | None:
    """What `${data.num_classes}` means: the number of labels L for multi-label 0/1 targets (N, L), else
    the largest class index + 1; None for float (regression) targets."""
    span = target_range(targets)
    if span is None:
        return None
    if all(is_multilabel(t) for t in targets):
        return targets[0].shape[1]
    return None if any(t.dtype == torch.bool for t in targets) else span[1] + 1
