"""Batches: the in-memory fast path, batched by index slicing.

A data set that fits in memory is held as two tensors on the training device. A batch is a
slice of them (or, when shuffling, an index_select with a slice of a permutation), so there
is no per-sample `__getitem__`, no collate and no host sync per step. Random transforms draw
from a generator on the same device, seeded per epoch.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

__all__ = ["Batches", "EpochPosition", "epoch_order", "epoch_seed", "augment_generator", "shard"]

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

# Odd 64-bit constant that spreads (seed, epoch) pairs over generator seeds.
_EPOCH_MIX = 0x9E3779B97F4A7C15
# Keeps the augmentation draws apart from the shuffling draws of the same epoch.
_AUGMENT_STREAM = 0x5DEECE66D


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffling seed of one epoch: a different order each epoch, the same on every run."""
    return (seed * _EPOCH_MIX + epoch) % 2**63


def epoch_order(num_samples: int, seed: int, epoch: int) -> torch.Tensor:
    """One epoch's shuffled sample order, drawn on the CPU: the same whichever device or loader uses it."""
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    return torch.randperm(num_samples, generator=generator)


def augment_generator(device: torch.device, seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    """The generator random transforms draw from in one epoch, on the device that holds the batches;
    each process of a multi-process run (`rank`) draws its own."""
    return torch.Generator(device).manual_seed((epoch_seed(seed, epoch) ^ _AUGMENT_STREAM) + rank * _EPOCH_MIX % 2**62)


def shard(order: torch.Tensor, rank: int, num_replicas: int, even: bool) -> torch.Tensor:
    """Process `rank`'s share of a sample order, as torch's DistributedSampler takes it: every
    `num_replicas`-th sample from `rank` on, so one step's samples over all processes are the same
    consecutive run of the order that one process would take with the global batch. `even` pads the
    order with its own head first, so that every process gets as many samples (training: no
    process waits on a step the others lack); evaluation leaves it uneven, so no sample counts twice."""
    if num_replicas == 1:
        return order
    if even:
        total = -(-len(order) // num_replicas) * num_replicas
        while len(order) < total:  # repeat the head (more than once for tiny splits)
            order = torch.cat([order, order[:total - len(order)]])
    return order[rank::num_replicas]


class EpochPosition:
    """Where an epoch's iteration is, for an exact resume: the batches it yielded and the augmentation
    generator's state after them (`state_dict`); `load_state_dict` makes the next iteration go on
    from there, with the very draws an iteration that never stopped would make."""

    epoch: int

    def __init__(self) -> None:
        self._yielded = 0
        self._generator: torch.Generator | None = None
        self._resume_at: tuple[int, torch.Tensor | None] | None = None

    def state_dict(self) -> dict:
        generator = self._generator
        return {"epoch": self.epoch, "batches": self._yielded,
                "augment": generator.get_state() if generator is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.set_epoch(state["epoch"])  # type: ignore[attr-defined]
        self._resume_at = (state["batches"], state["augment"])

    def _start(self, generator: torch.Generator | None) -> int:
        """Batches to skip in the iteration that begins (0 unless resuming); sets up the generator."""
        start, augment = self._resume_at or (0, None)
        self._resume_at = None
        if generator is not None and augment is not None:
            generator.set_state(augment)
        self._generator, self._yielded = generator, start
        return start


class Batches(EpochPosition):
    """Batches of (inputs, targets) held as tensors, sliced in order or in a seeded shuffled order.

    Args:
        inputs: (N, *sample) tensor, on the device the batches are for.
        targets: (N, *target) tensor, on the same device.
        batch_size: Samples per batch; the last batch holds the rest, unless `drop_last`.
        transform: Applied to each inputs batch with this epoch's generator, ``transform(x, generator)``
            (e.g. a `declarative.data.augment.Pipeline`); None: none.
        shuffle: Draw a new order each epoch (training); False keeps the data's order.
        seed: With the epoch (`set_epoch`), seeds the order, so a run repeats exactly.
        rank, num_replicas: This process's share of a multi-process run (see `shard`); training
            splits (`shuffle`) are padded to equal shares, evaluation splits are not.
        drop_last: Leave out the last batch when it is short (as DataLoader's drop_last): every batch
            then has batch_size samples. Default: False

    Shape:
        Each step yields ``x`` (B, *sample) after the transform and ``y`` (B, *target), B <= batch_size.
        Without a transform and without shuffling, ``x`` is a view of `inputs`: do not modify it in place.

    Examples::

        >>> batches = Batches(torch.zeros(10, 1, 8, 8), torch.arange(10), batch_size=4, shuffle=True)
        >>> batches.set_epoch(1)
        >>> [len(y) for _, y in batches]
        [4, 4, 2]
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int,
        *,
        transform: Transform | None = None,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        num_replicas: int = 1,
        drop_last: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, but got batch_size={batch_size}")
        if len(inputs) != len(targets):
            raise ValueError(f"inputs and targets must have the same length, but got {len(inputs)} and {len(targets)}")
        self.inputs = inputs
        self.targets = targets
        self.batch_size = batch_size
        self.transform = transform
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.num_replicas = num_replicas
        self.drop_last = drop_last
        self.epoch = 0
        super().__init__()

    @property
    def num_samples(self) -> int:
        """Samples this process reads per epoch (its share of a multi-process run)."""
        total = len(self.inputs)
        if self.num_replicas == 1:
            return total
        if self.shuffle:
            return -(-total // self.num_replicas)
        return len(range(self.rank, total, self.num_replicas))

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration uses (as DistributedSampler does)."""
        self.epoch = epoch

    def order(self) -> torch.Tensor:
        """This epoch's sample order, on the data's device.

        Drawn on the CPU, so the order is the same whichever device holds the data.
        """
        order = epoch_order(len(self.inputs), self.seed, self.epoch) if self.shuffle else torch.arange(len(self.inputs))
        return shard(order, self.rank, self.num_replicas, even=self.shuffle).to(self.device, non_blocking=True)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)  # ceil: the last, short batch counts

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order() if self.shuffle or self.num_replicas > 1 else None
        generator = (augment_generator(self.device, self.seed, self.epoch, self.rank) if self.transform is not None
                     else None)
        first = self._start(generator) * self.batch_size
        for start in range(first, len(self) * self.batch_size, self.batch_size):
            self._yielded += 1
            if order is None:
                x = self.inputs[start:start + self.batch_size]
                y = self.targets[start:start + self.batch_size]
            else:
                index = order[start:start + self.batch_size]
                x = self.inputs.index_select(0, index)
                y = self.targets.index_select(0, index)
            yield (self.transform(x, generator) if self.transform is not None else x), y

    def __repr__(self) -> str:
        return (f"Batches(num_samples={self.num_samples}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, device={self.device}" + (", drop_last=True)" if self.drop_last else ")"))
