"""What a model can take from its data: the shape of one sample and the number of classes.

These values are found without loading the data: each split the spec reads is described by its
source (a fixed published format such as CIFAR10's 3x32x32 images in 10 classes, a file's header,
the source's own arguments), or, where that is not exact and the files are here, its targets are
read alone. The shape after the spec's transforms comes from running them on zeros of the sample's
shape and dtype. Nothing is downloaded, and no statistics are computed: `Normalize: {mean: auto}`
takes stand-in numbers for the probe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from declarative.errors import SpecError

__all__ = ["DataInfo", "DataUnreadable", "RawSample", "data_info", "raw_sample", "transformed_sample", "transformed_shape"]

# Stand-in statistics for `auto`: any finite mean and non-zero std give the same output shape.
_STAND_IN = {"mean": [0.0], "std": [1.0]}


@dataclass(frozen=True)
class DataInfo:
    input_shape: tuple[int, ...]  # one training sample after the transforms, without the batch dim
    num_classes: int | None  # max target + 1; labels L of multi-label 0/1 targets (N, L); None for float targets
    vocab_size: int | None = None  # tokens in a text input's vocabulary; None without text
    input_dtype: torch.dtype = torch.float32  # one sample's dtype after the transforms (int64: token ids)


class DataUnreadable(SpecError):
    """The data's files cannot be read here (absent, or not in their format), and the source cannot
    describe them without: the values are unknown. Other SpecErrors are the spec's own problems."""


@dataclass(frozen=True)
class RawSample:
    """One training sample as the source gives it (before the transforms), and the class count of every split."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    num_classes: int | None
    vocab_size: int | None = None


def _offline(component):
    """The source component with `download: false`: finding these values never fetches data."""
    if "download" not in component.kwargs:
        return component
    return dataclasses.replace(component, kwargs={**component.kwargs, "download": False})


def raw_sample(spec, *, read: bool = True) -> RawSample | None:
    """The training sample's shape and dtype and the class count, as cheaply as they can be known.

    Args:
        read: Where a source's description is not exact (a published format's nominal values) or
            missing, read the targets (and, without a description, one sample) from the files when
            they are here. Without it, the descriptions alone; None when a split has none.

    Raises DataUnreadable, located at the source, when the values cannot be known (e.g. an absent
    folder), and the located SpecError of a split or source the spec names wrongly.
    """
    from declarative.data.classes import num_classes as _num_classes
    from declarative.data.sources import Source, SourceError
    from declarative.data.splits import _Loader, _plan

    class OfflineLoader(_Loader):
        def source(self, component):
            return super().source(_offline(component))

    loader = OfflineLoader(spec)
    named, _ = _plan(loader, spec)
    sample, counts, vocab_size = None, [], None
    for role, (component, split) in named.items():
        source = loader.source(component)
        try:
            described = source.describe(split)
            if described is None and not read:
                return None
            if described is not None and (described.exact or not read):
                counts.append(described.num_classes)
                if role == "train":
                    sample = (described.shape, described.dtype)
                continue
            if described is None and type(source).dataset is Source.dataset:  # one load gives both
                loaded = source.load(split)
                targets, first = loaded.targets, loaded.inputs[:1]
                if role == "train":
                    vocab_size = getattr(source, "vocab_size", None)
            else:
                try:
                    targets = source.targets(split)
                except SourceError:
                    if described is None:
                        raise
                    targets = None  # not here: the published format's values
                samples = source.dataset(split) if described is None and role == "train" else None
                first = samples[0][0].unsqueeze(0) if samples is not None and len(samples) else None
            no_first = described is None and role == "train" and (first is None or len(first) == 0)
            if (targets is not None and targets.numel() == 0) or no_first:
                raise SourceError(f"{component.name} ({split} split) has no samples")
        except SourceError as exc:
            raise DataUnreadable(exc.at(spec, _offline(component)).problems) from None
        counts.append(described.num_classes if targets is None else _num_classes([targets]))
        if role == "train":
            sample = (described.shape, described.dtype) if described is not None else \
                (tuple(first.shape[1:]), first.dtype)
    classes = None if any(c is None for c in counts) else max(counts)
    if spec.data.targets == "inputs":
        classes = None  # each sample is its own (float) target
    return RawSample(tuple(sample[0]), sample[1], classes, vocab_size)


def _probe(spec, components: list, raw: RawSample) -> torch.Tensor:
    """A batch of zeros of the raw sample's shape and dtype through `components`; a transform that fails on
    them is a located error."""
    probe = torch.zeros((2, *raw.shape), dtype=raw.dtype)
    if not components:
        return probe
    from declarative.data.transforms import AUTO, TRANSFORMS, _AUTO_ARGUMENTS, probe_transforms

    built = []
    for component in components:
        auto = {name: _STAND_IN[name] for name in _AUTO_ARGUMENTS.get(component.name, ())
                if component.kwargs.get(name) == AUTO}
        if auto:  # the spec keeps `auto`: the run computes the real statistics
            component = dataclasses.replace(component, kwargs={**component.kwargs, **auto})
        built.append(TRANSFORMS.build_component(component, spec))
    return probe_transforms(spec, components, built, probe)


def transformed_sample(spec, raw: RawSample) -> torch.Tensor:
    """A training probe batch after `data.train_transforms` and `data.transforms`; the eval pipeline
    (`data.eval_transforms` and `data.transforms`) must give samples of the same shape, as a run checks."""
    data = spec.data
    train = _probe(spec, data.train_transforms + data.transforms, raw)
    if data.eval_transforms and (data.val is not None or data.test is not None):
        from declarative.data.build import check_eval_shape

        role, path = ("val", data.val.path) if data.val is not None else ("test", data.test.path)
        shape = tuple(_probe(spec, data.eval_transforms + data.transforms, raw).shape[1:])
        check_eval_shape(spec, role, path, shape, tuple(train.shape[1:]), lambda: shape)
    return train


def transformed_shape(spec, raw: RawSample) -> tuple[int, ...]:
    """One training sample's shape after `data.train_transforms` and `data.transforms`."""
    return tuple(transformed_sample(spec, raw).shape[1:])


def data_info(spec, *, read: bool = True) -> DataInfo | None:
    """The values `${data.*}` references and `model.input: auto` take (see the module's docstring);
    None only without `read`, when a source cannot describe itself. Any problem with the data or the
    transforms is a located SpecError."""
    raw = raw_sample(spec, read=read)
    if raw is None:
        return None
    sample = transformed_sample(spec, raw)
    return DataInfo(input_shape=tuple(sample.shape[1:]), num_classes=raw.num_classes, vocab_size=raw.vocab_size,
                    input_dtype=sample.dtype)


def fitted_source_problems(spec) -> list:
    """What a run would reject in a source fitted on its data (a CSV's columns, a text folder), read here
    when its files are: a missing value nobody said how to fill, a free-text column, a text column beside
    others. Absent files are the run's to report (validate runs where the data may not be)."""
    from pathlib import Path

    from declarative.data.fitted import FittedSource
    from declarative.data.sources import SourceError
    from declarative.data.splits import open_source
    from declarative.spec.config import PATH_ARGUMENTS

    component = spec.data.source
    where = next((component.kwargs[a] for a in PATH_ARGUMENTS if isinstance(component.kwargs.get(a), str)), None)
    if where is None or not Path(where).exists():
        return []
    try:
        source = open_source(spec, _offline(component))
        if isinstance(source, FittedSource):
            source.load(source.split_names[0])
    except SourceError as exc:
        return exc.at(spec, component).problems
    except SpecError as exc:
        return exc.problems
    return []
