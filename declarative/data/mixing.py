"""MixUp and CutMix: torchvision.transforms.v2's batch transforms, on training batches only.

    data:
      batch_transforms:                       # after all other transforms, on (inputs, targets) of a batch
        - RandomChoice:
            transforms: [{MixUp: {alpha: 0.2}}, {CutMix: {alpha: 1.0}}]

They mix the samples of a batch and their targets, so the targets become class probabilities (N, C) that
sum to 1: CrossEntropyLoss takes them as they are (its label_smoothing still applies), and the metrics
score the argmax. `num_classes` is the data's when left out. Validation and test batches stay as they are.
The mixing draws from torch's generator, which the run seeds.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torchvision.transforms import v2

from declarative.registry import Entry, Param, Registry, signature_params

__all__ = ["BATCH_TRANSFORMS", "MixedBatches", "with_batch_transforms"]

BATCH_TRANSFORMS = Registry("batch transform", list_command="dtrain layers --kind batch_transform")
for _cls in (v2.MixUp, v2.CutMix):
    BATCH_TRANSFORMS.add(Entry(_cls.__name__, _cls,
                               signature_params(_cls.__init__, skip={"labels_getter"},
                                                constraints={"alpha": {"exclusiveMinimum": 0},
                                                             "num_classes": {"minimum": 2}}),
                               f"torchvision.transforms.v2.{_cls.__name__}: mixes the samples of a batch and their "
                               "targets.", frozenset({"num_classes"})))
BATCH_TRANSFORMS.add(Entry(
    "RandomChoice", v2.RandomChoice,
    {"transforms": Param("transforms", {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/batch_transform"}},
                         True),
     "p": Param("p", {"anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "number", "minimum": 0}}],
                      "default": None, "description": "The chance of each transform (default: equal)."}, False)},
    "torchvision.transforms.v2.RandomChoice: one of the transforms per batch."))

# The losses that take class probabilities as targets.
SOFT_TARGET_LOSSES = ("CrossEntropyLoss",)


def build_batch_transform(component: Any, spec: Any, num_classes: int | None) -> Any:
    """One batch transform of the spec, with num_classes taken from the data when left out."""
    from declarative.spec.config import Component

    if component.name == "RandomChoice":
        parts = [build_batch_transform(Component.parse(item, component.path + ("RandomChoice", "transforms", i)),
                                       spec, num_classes)
                 for i, item in enumerate(component.kwargs.get("transforms") or [])]
        p = component.kwargs.get("p")
        if p is not None and len(p) != len(parts):
            raise spec.error(component.path + ("RandomChoice", "p"),
                             f"p has {len(p)} chances for {len(parts)} transforms — give one per transform")
        return v2.RandomChoice(parts, p=p)
    inferred = {}
    if "num_classes" not in component.kwargs and component.name in BATCH_TRANSFORMS:
        if num_classes is None:
            raise spec.error(component.path, f"{component.name} needs num_classes: the data's targets are not class "
                                             "indices, so it has none to give")
        inferred["num_classes"] = num_classes
    return BATCH_TRANSFORMS.build_component(component, spec, **inferred)


class MixedBatches:
    """Training batches with a batch transform applied to each (inputs, targets) pair."""

    def __init__(self, batches: Any, transform: Any):
        self.batches = batches
        self.transform = transform

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for inputs, targets in self.batches:
            yield self.transform(inputs, targets)

    def __getattr__(self, name: str) -> Any:  # set_epoch, settings, ...: the batches' own
        return getattr(self.batches, name)


def with_batch_transforms(spec: Any, train: Any, num_classes: int | None, input_shape: tuple[int, ...]) -> Any:
    """The training batches, mixed as data.batch_transforms says (as they were when it says nothing)."""
    components = getattr(spec.data, "batch_transforms", None) or []
    if not components:
        return train
    if spec.loss is not None and spec.loss.name not in SOFT_TARGET_LOSSES:
        raise spec.error(("loss",), f"{spec.loss.name} does not take the class probabilities that "
                                    f"{components[0].name} makes of the targets — use CrossEntropyLoss")
    if spec.task not in (None, "multiclass"):
        raise spec.error(("data", "batch_transforms"), f"batch_transforms mix class labels; this run's task is "
                                                       f"{spec.task} — they need multiclass")
    if len(input_shape) != 3:
        raise spec.error(("data", "batch_transforms"), f"{components[0].name} mixes images (C, H, W); this data's "
                                                       f"samples have the shape {list(input_shape)}")
    transforms = [build_batch_transform(c, spec, num_classes) for c in components]
    return MixedBatches(train, transforms[0] if len(transforms) == 1 else v2.Compose(transforms))
