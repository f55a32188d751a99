"""The data stage: `build_data(spec, device)` makes a spec's batches (see the package's docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from declarative.data import classes
from declarative.data.augment import Pipeline, is_random
from declarative.data.batches import Batches
from declarative.data.loading import LoaderBatches, describe_size, loader_settings, memory_budget
from declarative.data.sources import TensorSplit
from declarative.data.splits import SplitTensors, estimated_nbytes, resolve_splits, split_targets
from declarative.data.stats import build_with_stats
from declarative.data.transforms import build_transforms, probe_transforms

__all__ = ["DataModule", "build_data", "check_model_input", "check_eval_shape"]

# Samples run through the transforms at build time, to find their output shape and any failure.
_PROBE_SAMPLES = 2
# Samples transformed at a time when a whole split is (the statistics, the precomputed transforms).
_CHUNK = 8192


@dataclass
class DataModule:
    """A run's data: its batches, and what the model needs to know about one sample."""

    train: Batches | LoaderBatches
    val: Batches | LoaderBatches | None
    test: Batches | LoaderBatches | None
    input_shape: tuple[int, ...]  # one sample after the transforms, without the batch dim
    num_classes: int | None  # max target + 1; labels L of multi-label 0/1 targets (N, L); None for float targets
    max_target: int | None = None  # the largest integer target; None for float targets
    min_target: int | None = None  # the smallest integer target; None for float targets
    target_shape: tuple[int, ...] = ()  # one sample's target, without the batch dim (the task is inferred from it)
    target_dtype: torch.dtype = torch.int64
    input_dtype: torch.dtype = torch.float32  # one sample's dtype after the transforms (int64: token ids)
    vocab_size: int | None = None  # tokens in a text input's vocabulary, for ${data.vocab_size}
    description: str = ""  # how the data is loaded, one line for the console, e.g. "data: in memory on cpu (47 MB)"


def _head(data: TensorSplit | Dataset, count: int) -> torch.Tensor:
    if isinstance(data, TensorSplit):
        return data.inputs[:count]
    return torch.stack([torch.as_tensor(data[i][0]) for i in range(min(count, len(data)))])


def _input_chunks(data: TensorSplit | Dataset, device: torch.device, spec) -> Iterator[torch.Tensor]:
    """A split's inputs, a chunk at a time, on `device`."""
    if isinstance(data, TensorSplit):
        for start in range(0, len(data), _CHUNK):
            yield data.inputs[start:start + _CHUNK].to(device)
        return
    workers = loader_settings(spec, device, data).num_workers
    for x, _ in DataLoader(data, batch_size=_CHUNK // 8, num_workers=workers):
        yield x.to(device)


def check_model_input(spec, input_shape: tuple[int, ...]) -> None:
    """The samples the data gives must have the shape the spec's model takes."""
    if list(input_shape) != list(spec.model.input):
        raise spec.error(("model", "input"), f"the data gives samples of shape {list(input_shape)} but "
                                             f"model.input is {list(spec.model.input)}; set model.input: "
                                             f"{list(input_shape)} or change data.transforms")


def _deterministic_head(transforms: list[torch.nn.Module]) -> int:
    """How many transforms at the head of a pipeline are deterministic (and can run once per data set)."""
    count = 0
    while count < len(transforms) and not is_random(transforms[count]):
        count += 1
    return count


def _nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _held_nbytes(split: TensorSplit, head: Pipeline) -> int:
    """The split's size once its deterministic head has run over it."""
    sample = head(split.inputs[:1], torch.Generator()) if head else split.inputs[:1]
    return _nbytes(sample) * len(split) + _nbytes(split.targets)


def _precomputed(split: TensorSplit, head: Pipeline, device: torch.device) -> TensorSplit:
    """The split on `device`, with `head` run over all of it, a chunk at a time."""
    if not head:
        return split.to(device)
    generator = torch.Generator()  # unused: the head is deterministic (and XLA devices have no generator)
    out = None
    for start in range(0, len(split), _CHUNK):
        x = head(split.inputs[start:start + _CHUNK].to(device), generator)
        if out is None:
            out = torch.empty((len(split), *x.shape[1:]), dtype=x.dtype, device=device)
        out[start:start + len(x)] = x
    return TensorSplit(out, split.targets.to(device))


def _splits_for(spec, device: torch.device) -> tuple[str, SplitTensors, str]:
    """Load or open the splits: 'memory' (tensors) or 'dataloader' (data sets), and why, when auto chose."""
    setting = spec.data.loader
    if setting == "auto":
        estimate = estimated_nbytes(spec)
        budget = memory_budget(device)
        if estimate is not None and estimate > budget:
            return "dataloader", resolve_splits(spec, as_datasets=True), \
                f"{describe_size(estimate)} is over the in-memory budget of {describe_size(budget)}"
    if setting == "dataloader":
        return "dataloader", resolve_splits(spec, as_datasets=True), ""
    return "memory", resolve_splits(spec), ""


def _pipelines(spec, splits: SplitTensors, device: torch.device) -> tuple[list, list, torch.Tensor]:
    """The eval and train transform pipelines (with `auto` statistics computed from the training split), and
    a transformed training probe batch; val/test samples of another shape are a located error."""
    data = spec.data

    def train_inputs() -> Iterator[torch.Tensor]:
        return _input_chunks(splits.train, device, spec)

    common = build_with_stats(spec, data.transforms, train_inputs)
    eval_transforms = build_with_stats(spec, data.eval_transforms, train_inputs) + common
    train_transforms = build_with_stats(spec, data.train_transforms, train_inputs) + common

    probe = probe_transforms(spec, data.train_transforms + data.transforms, train_transforms,
                             _head(splits.train, _PROBE_SAMPLES))
    eval_components = data.eval_transforms + data.transforms
    for role, split, path in (("val", splits.val, splits.val_path), ("test", splits.test, splits.test_path)):
        if split is None:
            continue
        shape = tuple(probe_transforms(spec, eval_components, eval_transforms, _head(split, _PROBE_SAMPLES)).shape[1:])
        check_eval_shape(spec, role, path, shape, tuple(probe.shape[1:]),
                         lambda: tuple(probe_transforms(spec, eval_components, eval_transforms,
                                                        _head(splits.train, _PROBE_SAMPLES)).shape[1:]))
    return eval_transforms, train_transforms, probe


def check_eval_shape(spec, role: str, path: tuple, shape: tuple, train_shape: tuple, eval_of_train) -> None:
    """Val/test samples must have the training samples' shape; `eval_of_train()` is a training sample's
    shape through the eval pipeline, which tells the per-split transforms apart from the data."""
    if shape == train_shape:
        return
    data = spec.data
    if data.eval_transforms and shape == eval_of_train():
        raise spec.error(("data", "eval_transforms"), f"training samples come out of train_transforms with shape "
                         f"{list(train_shape)}, but {role} samples out of eval_transforms with {list(shape)} — give "
                         f"both the same output shape (e.g. RandomResizedCrop 224 for training, Resize 256 + "
                         f"CenterCrop 224 for evaluation), or resize in transforms")
    if data.train_transforms and shape == eval_of_train():
        raise spec.error(("data", "train_transforms"), f"train_transforms change the sample shape from "
                         f"{list(shape)} to {list(train_shape)}, but {role} batches do not get them — keep the shape "
                         f"(e.g. RandomCrop with padding), or resize in transforms")
    raise spec.error(path, f"the {role} data gives samples of shape {list(shape)} but the training "
                           f"data gives {list(train_shape)}; they must match")


def _one_hot_as_probabilities(splits: SplitTensors) -> None:
    """One-hot integer targets (N, C), one 1 per row, become float class probabilities, which
    CrossEntropyLoss takes as they are (as it takes soft labels)."""
    for role in ("train", "val", "test"):
        split = getattr(splits, role)
        targets = split.targets if isinstance(split, TensorSplit) else \
            split.tensors[1] if isinstance(split, TensorDataset) else None
        if targets is None or targets.dim() != 2 or targets.is_floating_point() or targets.shape[1] < 2:
            continue
        if not bool(((targets == 0) | (targets == 1)).all() and (targets.sum(1) == 1).all()):
            continue
        probabilities = targets.float()
        setattr(splits, role, TensorSplit(split.inputs, probabilities) if isinstance(split, TensorSplit)
                else TensorDataset(split.tensors[0], probabilities))


def _self_targets(spec, splits: SplitTensors) -> None:
    """`targets: inputs`: each split's targets become its inputs through the deterministic `transforms`."""
    built = build_transforms(spec, spec.data.transforms)
    clean = Pipeline([t for t in built if not is_random(t)])
    for role in ("train", "val", "test"):
        split = getattr(splits, role)
        if split is None:
            continue
        if not isinstance(split, TensorSplit):
            raise spec.error(("data", "targets"), "targets: inputs needs the data held in memory; set "
                                                  "data.loader: memory")
        targets = _precomputed(TensorSplit(split.inputs, split.inputs[:, :0]), clean, torch.device("cpu")).inputs
        if not targets.is_floating_point():
            targets = targets.float()  # reconstruction losses compare floats; integer targets would read as classes
        setattr(splits, role, TensorSplit(split.inputs, targets))


def _batch_size(data, role: str) -> int:
    return data.batch_size if role == "train" or data.eval_batch_size is None else data.eval_batch_size


def build_data(spec, device: torch.device | str = "cpu", *, rank: int = 0, num_replicas: int = 1) -> DataModule:
    """The spec's data as batches on `device`; any problem with it is a located SpecError.

    Args:
        spec: The typed, validated spec (`declarative.spec.config.Spec`). `auto` normalization
            statistics are written into its transforms.
        device: Where the batches are made, e.g. ``cuda``.
        rank, num_replicas: In a run of several processes, this one's index and their number: each
            split's batches are this process's share (`declarative.data.batches.shard`).
    """
    device = torch.device(device)
    data = spec.data
    mode, splits, reason = _splits_for(spec, device)
    eval_transforms, train_transforms, probe = _pipelines(spec, splits, device)
    if data.targets == "inputs":
        _self_targets(spec, splits)  # after _pipelines: `auto` statistics are numbers by then
    elif spec.loss is not None and spec.loss.name == "CrossEntropyLoss":
        _one_hot_as_probabilities(splits)
    input_shape = tuple(probe.shape[1:])
    if not isinstance(spec.model.input, str) and all(isinstance(d, int) for d in spec.model.input):
        check_model_input(spec, input_shape)  # else it waits for these values: the plan resolves it from them

    roles = {"train": splits.train, "val": splits.val, "test": splits.test}
    present = {role: split for role, split in roles.items() if split is not None}
    targets = {role: split_targets(split) for role, split in present.items()}
    num_classes = classes.num_classes(list(targets.values()))
    min_target, max_target = classes.target_range(list(targets.values())) or (None, None)
    pipelines = {role: train_transforms if role == "train" else eval_transforms for role in present}

    if mode == "memory":
        heads = {role: _deterministic_head(pipelines[role]) for role in present}
        held = sum(_held_nbytes(split, Pipeline(pipelines[role][:heads[role]])) for role, split in present.items())
        raw = sum(_nbytes(split.inputs, split.targets) for split in present.values())
        budget = memory_budget(device)
        if held > budget:
            heads = dict.fromkeys(present, 0)  # keep the stored form; transform each batch
            held = raw
        if held > budget and data.loader == "auto":
            mode, reason = "dataloader", f"{describe_size(raw)} is over the in-memory budget of {describe_size(budget)}"
            present = {role: TensorDataset(split.inputs, split.targets) for role, split in present.items()}

    batches: dict[str, Batches | LoaderBatches | None] = dict.fromkeys(roles)
    drop_last = {role: data.drop_last and role == "train" for role in roles}  # val and test keep every sample
    # training batches in a new order each epoch; overfit_batches keeps the same first batches (as Lightning)
    shuffle = {role: role == "train" and not spec.trainer.overfit_batches for role in roles}
    if mode == "memory":
        for role, split in present.items():
            head = heads[role]
            split = _precomputed(split, Pipeline(pipelines[role][:head]), device)
            rest = Pipeline(pipelines[role][head:])
            batches[role] = Batches(split.inputs, split.targets, _batch_size(data, role), transform=rest or None,
                                    shuffle=shuffle[role], seed=spec.seed, rank=rank, num_replicas=num_replicas,
                                    drop_last=drop_last[role])
        description = f"data: in memory on {device} ({describe_size(held)})"
    else:
        for role, split in present.items():
            if isinstance(split, TensorSplit):
                split = TensorDataset(split.inputs, split.targets)
            settings = loader_settings(spec, device, split)
            pipeline = Pipeline(pipelines[role])
            batches[role] = LoaderBatches(split, _batch_size(data, role), device=device, settings=settings,
                                          transform=pipeline or None, shuffle=shuffle[role], seed=spec.seed,
                                          rank=rank, num_replicas=num_replicas, drop_last=drop_last[role])
        description = f"data: DataLoader, {batches['train'].settings.describe()}" + (f" ({reason})" if reason else "")

    from declarative.data.mixing import with_batch_transforms

    train = with_batch_transforms(spec, batches["train"], num_classes, input_shape)  # MixUp / CutMix: training batches only
    return DataModule(train=train, val=batches["val"], test=batches["test"], input_shape=input_shape,
                      num_classes=num_classes, max_target=max_target, min_target=min_target,
                      description=description, input_dtype=probe.dtype, vocab_size=splits.vocab_size,
                      target_shape=tuple(targets["train"].shape[1:]), target_dtype=targets["train"].dtype)
