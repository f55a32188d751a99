"""What a model can take from its data: the shape of one sample and the number of classes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataInfo:
    input_shape: tuple[int, ...]  # one training sample after the transforms, without the batch dim
    num_classes: int | None  # max target + 1 for integer targets; None for float (regression) targets


def data_info(spec) -> DataInfo:
    """Read the spec's data (on the CPU) for the values `${data.*}` references and `model.input: auto` take.
    Any problem with the data is the located SpecError `build_data` would raise."""
    import torch

    from declarative.data import _num_classes, _pipelines, _splits_for, split_targets

    # build_data's own pieces, without its check of model.input, which is what is being found out here
    cpu = torch.device("cpu")
    _, splits, _ = _splits_for(spec, cpu)
    _, _, input_shape = _pipelines(spec, splits, cpu)
    present = [s for s in (splits.train, splits.val, splits.test) if s is not None]
    return DataInfo(input_shape=input_shape, num_classes=_num_classes([split_targets(s) for s in present]))
