"""Splits: which samples train, validate and test, as the spec's data section says.

- The training split is the source's `train` split (or its only one).
- `fraction: f` carves f of the training split's samples out of it, with a permutation seeded
  by `spec.seed`: test is carved first, then val from the rest. Both fractions are of the
  whole training split, so `val: 0.1, test: 0.1` leaves 80% to train.
- `split: name` is a split the source has; `source: {...}` is a source of its own.
- Without `data.test`, a source's own `test` split is the test split; without `data.val`,
  there is no validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from declarative.data.images import leading_resize
from declarative.data.sources import SOURCES, Source, SourceError, TensorSplit
from declarative.errors import did_you_mean
from declarative.registry import Registry
from declarative.spec.config import PATH_ARGUMENTS, Component, Split

__all__ = ["SplitTensors", "resolve_splits", "open_source"]


@dataclass
class SplitTensors:
    """The three splits of a run, on the CPU; val and test may be absent."""

    train: TensorSplit
    val: TensorSplit | None = None
    test: TensorSplit | None = None
    # Where each split was named in the spec, for errors found later (a shape that differs).
    val_path: tuple = ()
    test_path: tuple = ()


def open_source(spec, component: Component, registry: Registry = SOURCES) -> Source:
    """Build the source a component names; a bad name, argument or file is a located error."""
    try:
        return registry.build_component(component, spec)
    except SourceError as exc:
        raise exc.at(spec, component) from None


class _Loader:
    """Loads splits of the spec's sources, each once, and checks what they hold."""

    def __init__(self, spec):
        self.spec = spec
        self._sources: dict[tuple, Source] = {}
        self._splits: dict[tuple, TensorSplit] = {}

    def source(self, component: Component) -> Source:
        if component.path not in self._sources:
            source = open_source(self.spec, component)
            if hasattr(source, "resize"):  # images read one by one: a leading Resize makes them one size
                source.resize = leading_resize(self.spec)
            self._sources[component.path] = source
        return self._sources[component.path]

    def default_split(self, component: Component) -> str:
        """The split a source trains on: `train`, or its only split."""
        names = self.source(component).split_names
        if "train" in names:
            return "train"
        if len(names) == 1:
            return names[0]
        raise self.spec.error(component.path, f"{component.name} has no 'train' split "
                                              f"(its splits: {', '.join(names)})")

    def load(self, component: Component, split: str) -> TensorSplit:
        key = (component.path, split)
        if key not in self._splits:
            try:
                loaded = self.source(component).load(split)
            except SourceError as exc:
                raise exc.at(self.spec, component) from None
            self._splits[key] = self._checked(component, loaded, split)
        return self._splits[key]

    def _checked(self, component: Component, data: TensorSplit, split: str) -> TensorSplit:
        """Inputs and targets that pair up; integer targets as int64, the dtype of class indices."""
        # Point at the argument that names the file, where the spec wrote one.
        argument = next((a for a in PATH_ARGUMENTS if a in component.kwargs), None)
        what = f"{component.name} ({split} split)"
        inputs, targets = data.inputs, data.targets
        if inputs.dim() == 0 or targets.dim() == 0:
            raise SourceError(f"{what}: inputs and targets need a leading sample dim; got shapes "
                              f"{list(inputs.shape)} and {list(targets.shape)}", argument).at(self.spec, component)
        if len(inputs) != len(targets):
            raise SourceError(f"{what}: inputs has {len(inputs)} samples but targets has {len(targets)}; "
                              f"they must pair up, one target per input", argument).at(self.spec, component)
        if len(inputs) == 0:
            raise SourceError(f"{what} has no samples", argument).at(self.spec, component)
        integer = not (targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool)
        if integer and targets.dtype != torch.int64:
            targets = targets.long()  # losses take class indices as int64
        return TensorSplit(inputs, targets)


def _named_split(loader: _Loader, spec, split: Split) -> TensorSplit:
    """A split given by name (`split: test`) or by a source of its own."""
    if split.source is not None:
        return loader.load(split.source, loader.default_split(split.source))
    source = spec.data.source
    names = loader.source(source).split_names
    if split.split not in names:
        hint = did_you_mean(split.split, names)
        raise spec.error(split.path + ("split",), f"{source.name} has no split '{split.split}'"
                         + (f" — {hint}" if hint else "") + f" (its splits: {', '.join(names)})")
    return loader.load(source, split.split)


def _carve_counts(spec, n: int, carved: list[tuple[str, Split]]) -> list[int]:
    """How many samples each fraction takes; each must leave at least one sample on both sides."""
    counts, left = [], n
    for role, split in carved:
        fraction = split.fraction
        at = split.path + ("fraction",)
        count = round(fraction * n)
        if count < 1 or left - count < 1:
            side = role if count < 1 else "train"
            raise spec.error(at, f"{role} fraction {fraction} of {n} training samples takes {count} of the "
                                 f"{left} left, which leaves {side} empty; a fraction must leave at least one "
                                 f"sample on each side")
        counts.append(count)
        left -= count
    return counts


def resolve_splits(spec) -> SplitTensors:
    """The train, val and test splits the spec asks for, loaded on the CPU."""
    data = spec.data
    loader = _Loader(spec)
    train = loader.load(data.source, loader.default_split(data.source))
    out = SplitTensors(train, val_path=data.val.path if data.val else (),
                       test_path=data.test.path if data.test else data.source.path)

    if data.test is None and "test" in loader.source(data.source).split_names:
        out.test = loader.load(data.source, "test")
    carved = []
    for role, split in (("test", data.test), ("val", data.val)):  # test first: the order is part of the seed
        if split is None:
            continue
        if split.fraction is not None:
            carved.append((role, split))
        else:  # the schema admits exactly one of fraction, split and source
            setattr(out, role, _named_split(loader, spec, split))

    if carved:
        counts = _carve_counts(spec, len(train), carved)
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(spec.seed))
        start = 0
        for (role, _), count in zip(carved, counts):
            # Sorted, so a carved split keeps the source's order: eval batches read memory in sequence.
            setattr(out, role, train.subset(order[start:start + count].sort().values))
            start += count
        out.train = train.subset(order[start:].sort().values)
    return out
