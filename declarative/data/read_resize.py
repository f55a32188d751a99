"""The resize that runs on each image as it is read (see declarative/data/images.py): the ToImage/Resize/
CenterCrop every pipeline begins with. Apart from images.py so that a source without images (a CSV of
numbers) finds it has none without importing torchvision."""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["SIZE_TRANSFORMS", "leading_resize"]

# Deterministic transforms that give every image one size; running them twice changes nothing.
SIZE_TRANSFORMS = ("Resize", "CenterCrop")
# Transforms that may come before them in the per-image prefix (they keep uint8 images as they are).
_PREFIX_TRANSFORMS = ("ToImage", *SIZE_TRANSFORMS)


def _prefix(components: list) -> list:
    """The leading ToImage/Resize/CenterCrop components of a pipeline, up to its last Resize or CenterCrop."""
    prefix = []
    for component in components:
        if component.name not in _PREFIX_TRANSFORMS:
            break
        prefix.append(component)
    while prefix and prefix[-1].name not in SIZE_TRANSFORMS:
        prefix.pop()
    return prefix


def leading_resize(spec, roles: tuple[str, ...] = ("train", "eval")) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The ToImage/Resize/CenterCrop transforms that every pipeline the source feeds begins with, to run on
    each image as it is read; None when they do not all begin with the same Resize or CenterCrop.

    Args:
        roles: The pipelines the source's images go through: ``train`` (train_transforms, then
            transforms) and ``eval`` (eval_transforms, then transforms).
    """
    data = spec.data
    pipelines = {"train": data.train_transforms + data.transforms, "eval": data.eval_transforms + data.transforms}
    prefixes = [_prefix(pipelines[role]) for role in roles]
    prefix = prefixes[0]
    for other in prefixes[1:]:  # the part they share, item by item
        shared = 0
        while shared < min(len(prefix), len(other)) and prefix[shared].to_yaml() == other[shared].to_yaml():
            shared += 1
        prefix = _prefix(prefix[:shared])
    if not prefix:
        return None
    from torchvision.transforms import v2

    from declarative.data.transforms import TRANSFORMS

    compose = v2.Compose([TRANSFORMS.build_component(c, spec) for c in prefix])
    return lambda image: compose(image).as_subclass(torch.Tensor)
