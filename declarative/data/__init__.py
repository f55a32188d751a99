"""Data from specs: sources, transforms, splits and in-memory batches.

`build_data(spec, device)` is the stage's entry point: it loads the spec's source, carves or
loads the val and test splits, moves them to the device once, and wraps each in `Batches`
that apply the spec's transforms to every batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from declarative.data.batches import Batches
from declarative.data.sources import SOURCES, Source, SourceError, TensorSplit
from declarative.data.splits import SplitTensors, resolve_splits
from declarative.data.transforms import TRANSFORMS, BatchTransform, build_transforms, probe_transforms
from declarative.data import images, synthetic, tabular, torchvision_sources, vision  # noqa: F401  (each registers its sources in SOURCES)

__all__ = ["DataModule", "build_data", "check_model_input", "Batches", "Source", "SourceError", "TensorSplit",
           "SOURCES", "TRANSFORMS"]

# Samples run through the transforms at build time, to find their output shape and any failure.
_PROBE_SAMPLES = 2


@dataclass
class DataModule:
    """A run's data: its batches, and what the model needs to know about one sample."""

    train: Batches
    val: Batches | None
    test: Batches | None
    input_shape: tuple[int, ...]  # one sample after the transforms, without the batch dim
    num_classes: int | None  # max target + 1 for integer targets; None for float (regression) targets


def _sample_shape(spec, transforms: list, split: TensorSplit) -> tuple[int, ...]:
    return tuple(probe_transforms(spec, transforms, split.inputs[:_PROBE_SAMPLES]).shape[1:])


def _num_classes(splits: list[TensorSplit]) -> int | None:
    targets = [s.targets for s in splits]
    if any(t.is_floating_point() or t.is_complex() or t.dtype == torch.bool for t in targets):
        return None
    return int(max(t.max() for t in targets)) + 1  # once, at build time: the only host sync here


def check_model_input(spec, input_shape: tuple[int, ...]) -> None:
    """The samples the data gives must have the shape the spec's model takes."""
    if list(input_shape) != list(spec.model.input):
        raise spec.error(("model", "input"), f"the data gives samples of shape {list(input_shape)} but "
                                             f"model.input is {list(spec.model.input)}; set model.input: "
                                             f"{list(input_shape)} or change data.transforms")


def build_data(spec, device: torch.device | str = "cpu") -> DataModule:
    """The spec's data as batches on `device`; any problem with it is a located SpecError.

    Args:
        spec: The typed, validated spec (`declarative.spec.config.Spec`).
        device: Where the data sets are held and batched, e.g. ``cuda``.
    """
    batch_size = spec.data.batch_size
    splits: SplitTensors = resolve_splits(spec)
    transforms = build_transforms(spec)
    input_shape = _sample_shape(spec, transforms, splits.train)
    for role, split, path in (("val", splits.val, splits.val_path), ("test", splits.test, splits.test_path)):
        if split is not None and (shape := _sample_shape(spec, transforms, split)) != input_shape:
            raise spec.error(path, f"the {role} data gives samples of shape {list(shape)} but the training "
                                   f"data gives {list(input_shape)}; they must match")
    check_model_input(spec, input_shape)

    present = [s for s in (splits.train, splits.val, splits.test) if s is not None]
    num_classes = _num_classes(present)
    transform = BatchTransform(transforms) if transforms else None

    def batches(split: TensorSplit | None, shuffle: bool) -> Batches | None:
        if split is None:
            return None
        split = split.to(device)
        return Batches(split.inputs, split.targets, batch_size, transform=transform, shuffle=shuffle,
                       seed=spec.seed)

    return DataModule(
        train=batches(splits.train, shuffle=True),
        val=batches(splits.val, shuffle=False),
        test=batches(splits.test, shuffle=False),
        input_shape=input_shape,
        num_classes=num_classes,
    )
