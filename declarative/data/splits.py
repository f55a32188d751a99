"""Splits: which samples train, validate and test, as the spec's data section says.

- The training split is the source's `train` split (or its only one).
- `fraction: f` carves f of the training split's samples out of it, with a permutation seeded
  by `spec.seed`: test is carved first, then val from the rest. Both fractions are of the
  whole training split, so `val: 0.1, test: 0.1` leaves 80% to train. With `stratify: true`
  each class gives the same fraction of its own samples (largest remainders settle the
  rounding), so an imbalanced data set keeps its proportions in every split.
- A split is held either whole in memory (`TensorSplit`) or as a `torch.utils.data.Dataset`
  (`as_datasets=True`, for the DataLoader path); carving picks the same samples either way.
- `order: last` takes a fraction's samples from the end of the training split, in order (a
  chronological split: the latest samples validate or test); test's come last, then val's.
- A source fitted on the training split (a CSV with preprocessing, text) hands out raw rows;
  they are carved, the source is fitted on the training rows alone, and every split is encoded
  by that fit (declarative/data/fitted.py). A val or test split from a source of its own is
  encoded by the training source's fit.
- `split: name` is a split the source has; `source: {...}` is a source of its own.
- Without `data.test`, a source's own `test` split is the test split; without `data.val`,
  there is no validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from declarative.data.finite import non_finite_message
from declarative.data.read_resize import leading_resize
from declarative.data.fitted import FittedSource, Rows
from declarative.data.sources import SOURCES, Source, SourceError, TensorSplit
from declarative.errors import did_you_mean
from declarative.registry import Registry
from declarative.spec.config import PATH_ARGUMENTS, Component, Split

__all__ = ["SplitTensors", "resolve_splits", "open_source", "estimated_nbytes", "split_targets"]

SplitData = Union[TensorSplit, Dataset]


@dataclass
class SplitTensors:
    """The three splits of a run, on the CPU (tensors, or data sets); val and test may be absent."""

    train: SplitData
    val: SplitData | None = None
    test: SplitData | None = None
    # Where each split was named in the spec, for errors found later (a shape that differs).
    val_path: tuple = ()
    test_path: tuple = ()
    vocab_size: int | None = None  # tokens in a text input's vocabulary, for ${data.vocab_size}


def open_source(spec, component: Component, registry: Registry = SOURCES) -> Source:
    """Build the source a component names; a bad name, argument or file is a located error."""
    try:
        return registry.build_component(component, spec)
    except SourceError as exc:
        raise exc.at(spec, component) from None


class _Loader:
    """Loads splits of the spec's sources, each once, and checks what they hold."""

    def __init__(self, spec, as_datasets: bool = False):
        self.spec = spec
        self.as_datasets = as_datasets
        self._sources: dict[tuple, Source] = {}
        self._splits: dict[tuple, SplitData] = {}

    def source(self, component: Component) -> Source:
        if component.path not in self._sources:
            source = open_source(self.spec, component)
            if hasattr(source, "resize"):  # images read one by one: a leading Resize makes them one size
                roles = ("train", "eval") if component.path == self.spec.data.source.path else ("eval",)
                source.resize = leading_resize(self.spec, roles)
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

    def load(self, component: Component, split: str) -> SplitData:
        key = (component.path, split)
        if key not in self._splits:
            try:
                source = self.source(component)
                if isinstance(source, FittedSource):  # raw rows: encoded once the training rows are fitted
                    train = self.source(self.spec.data.source)
                    if source is not train and type(source) is type(train):
                        source.share_fit(train)  # one set of settings: the same classes, types and fit
                    rows = source.rows(split)
                    if len(rows) == 0:
                        raise SourceError(f"{component.name} ({split} split) has no samples")
                    self._splits[key] = rows
                elif self.as_datasets:
                    self._splits[key] = self._checked_dataset(component, source.dataset(split), split)
                else:
                    self._splits[key] = self._checked(component, source.load(split), split)
            except SourceError as exc:
                raise exc.at(self.spec, component) from None
        return self._splits[key]

    def nbytes(self, component: Component, split: str) -> int | None:
        try:
            return self.source(component).nbytes(split)
        except SourceError as exc:
            raise exc.at(self.spec, component) from None

    def _checked_dataset(self, component: Component, data: Dataset, split: str) -> Dataset:
        argument = next((a for a in PATH_ARGUMENTS if a in component.kwargs), None)
        if len(data) == 0:
            raise SourceError(f"{component.name} ({split} split) has no samples", argument).at(self.spec, component)
        if isinstance(data, TensorDataset) and len(data.tensors) == 2:  # files decode to integers: nothing to check
            self._check_finite(component, f"{component.name} ({split} split)", argument, *data.tensors)
        return data

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
        self._check_finite(component, what, argument, inputs, targets)
        return TensorSplit(inputs, targets)

    def _check_finite(self, component: Component, what: str, argument: str | None, inputs: torch.Tensor,
                      targets: torch.Tensor) -> None:
        """A NaN or infinity among the samples stops the run here, before training (unless check_finite: false)."""
        message = non_finite_message(what, inputs, targets) if self.spec.data.check_finite else None
        if message:
            raise SourceError(message, argument).at(self.spec, component)


def _split_name(loader: _Loader, spec, split: Split) -> tuple[Component, str]:
    """The source and split name of a split given by name (`split: test`) or by a source of its own."""
    if split.source is not None:
        return split.source, loader.default_split(split.source)
    source = spec.data.source
    names = loader.source(source).split_names
    if split.split not in names:
        hint = did_you_mean(split.split, names)
        raise spec.error(split.path + ("split",), f"{source.name} has no split '{split.split}'"
                         + (f" — {hint}" if hint else "") + f" (its splits: {', '.join(names)})")
    return source, split.split


def _plan(loader: _Loader, spec) -> tuple[dict[str, tuple[Component, str]], list[tuple[str, Split]]]:
    """Which source split each role reads, and the roles carved from train by a fraction."""
    data = spec.data
    named = {"train": (data.source, loader.default_split(data.source))}
    if data.test is None and "test" in loader.source(data.source).split_names:
        named["test"] = (data.source, "test")
    carved = []
    for role, split in (("test", data.test), ("val", data.val)):  # test first: the order is part of the seed
        if split is None:
            continue
        if split.fraction is not None:
            carved.append((role, split))
        else:  # the schema admits exactly one of fraction, split and source
            named[role] = _split_name(loader, spec, split)
    return named, carved


def estimated_nbytes(spec, loader: _Loader | None = None) -> int | None:
    """The in-memory size of every split the spec reads, as the sources estimate it; None: unknown."""
    loader = loader or _Loader(spec)
    named, _ = _plan(loader, spec)
    total = 0
    for component, split in {(c.path, s): (c, s) for c, s in named.values()}.values():
        size = loader.nbytes(component, split)
        if size is None:
            return None
        total += size
    return total


def split_targets(data: SplitData) -> torch.Tensor:
    """The targets of a split, in sample order (read from the data set when it does not hold them)."""
    if isinstance(data, TensorSplit):
        return data.targets
    if isinstance(data, TensorDataset):
        return data.tensors[1]
    if isinstance(data, Subset):
        return split_targets(data.dataset)[torch.as_tensor(data.indices, dtype=torch.long)]
    targets = getattr(data, "targets", None)  # torchvision data sets (ImageFolder, MNIST, ...) keep them
    if targets is not None and len(targets) == len(data):
        return torch.as_tensor(targets)
    return torch.as_tensor([data[i][1] for i in range(len(data))])


def _subset(data: SplitData, index: torch.Tensor) -> SplitData:
    return data.subset(index) if isinstance(data, (TensorSplit, Rows)) else Subset(data, index.tolist())


def _stratified_quotas(class_counts: torch.Tensor, available: torch.Tensor, count: int) -> torch.Tensor:
    """How many samples of each class a split of `count` takes: the class's share of `count`,
    rounded by largest remainders (each class within one of its exact share), never more than it has left."""
    exact = class_counts.double() * count / class_counts.sum()
    quotas = torch.minimum(exact.floor().long(), available)
    remainder = exact - exact.floor()
    for c in torch.argsort(remainder, descending=True, stable=True).tolist():
        if int(quotas.sum()) >= count:
            break
        if quotas[c] < available[c]:
            quotas[c] += 1
    return quotas


def _carve(spec, data: SplitData, carved: list[tuple[str, Split]]) -> dict[str, torch.Tensor]:
    """The sample indices of each carved role and of what is left to train, each sorted."""
    n = len(data)
    counts = _carve_counts(spec, n, carved)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(spec.seed))
    remaining = order
    indices: dict[str, torch.Tensor] = {}
    targets = None
    for (role, split), count in zip(carved, counts):
        if split.order == "last":  # the latest samples, in their order
            ordered = remaining.sort().values
            taken, remaining = ordered[len(ordered) - count:], ordered[:len(ordered) - count]
        elif not split.stratify:
            taken, remaining = remaining[:count], remaining[count:]
        else:
            if targets is None:
                targets = split_targets(data)
                if targets.dim() == 2 and targets.shape[1] == 1:
                    targets = targets[:, 0]  # a column of labels (binary 0/1 targets of shape (N, 1))
                if targets.dim() != 1 or targets.is_floating_point() or targets.is_complex():
                    what = "float (regression) targets" if targets.is_floating_point() else "targets"
                    raise spec.error(split.path + ("stratify",), f"stratify needs one class index per sample, "
                                     f"but the {what} have shape {list(targets.shape)} and dtype "
                                     f"{str(targets.dtype).removeprefix('torch.')}")
                targets = targets.long()
                if targets.min() < 0:
                    raise spec.error(split.path + ("stratify",), "stratify needs class indices >= 0")
            classes = targets[remaining]  # in the seeded order: each class's first samples are a random draw
            num_classes = int(targets.max()) + 1
            quotas = _stratified_quotas(torch.bincount(targets, minlength=num_classes),
                                        torch.bincount(classes, minlength=num_classes), count)
            rank = torch.empty_like(classes)  # each sample's position among the remaining of its class
            for c in torch.nonzero(quotas).flatten().tolist():
                members = classes == c
                rank[members] = torch.arange(int(members.sum()))
            take = rank < quotas[classes]
            taken, remaining = remaining[take], remaining[~take]
        # Sorted, so a carved split keeps the source's order: eval batches read memory in sequence.
        indices[role] = taken.sort().values
    indices["train"] = remaining.sort().values
    return indices


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


def resolve_splits(spec, *, as_datasets: bool = False) -> SplitTensors:
    """The train, val and test splits the spec asks for, on the CPU.

    Args:
        as_datasets: Each split as the source's `dataset(split)` (read sample by sample) instead of
            its whole `load(split)`.
    """
    data = spec.data
    loader = _Loader(spec, as_datasets)
    named, carved = _plan(loader, spec)
    loaded = {role: loader.load(*where) for role, where in named.items()}
    out = SplitTensors(loaded["train"], val=loaded.get("val"), test=loaded.get("test"),
                       val_path=data.val.path if data.val else (),
                       test_path=data.test.path if data.test else data.source.path)
    if carved:
        train = out.train
        for role, index in _carve(spec, train, carved).items():
            setattr(out, role, _subset(train, index))
    if isinstance(out.train, Rows):
        _fit_and_encode(spec, loader, out, as_datasets)
    return out


def _fit_and_encode(spec, loader: _Loader, out: SplitTensors, as_datasets: bool) -> None:
    """Fit the training source on the training rows, record the fit in its spec component, encode every split."""
    component = spec.data.source
    source = loader.source(component)
    try:
        source.fit(out.train)
        for role in ("train", "val", "test"):
            rows = getattr(out, role)
            if isinstance(rows, Rows):
                encoded = loader._checked(component, source.encode(rows), role)
                setattr(out, role, TensorDataset(encoded.inputs, encoded.targets) if as_datasets else encoded)
    except SourceError as exc:
        raise exc.at(spec, component) from None
    component.kwargs = source.fitted_kwargs()
    out.vocab_size = source.vocab_size
