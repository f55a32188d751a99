"""How a run's data reaches the model: held in memory, or read through a torch DataLoader.

`data.loader: auto` (the default) holds the data in memory when it fits the budget:

- on a CUDA device, half the GPU memory free at the start of the run (the model, its
  activations and the optimizer need the rest);
- on the CPU, half the RAM available (MemAvailable).

Otherwise, or with `data.loader: dataloader`, a DataLoader reads the source's `dataset(split)`.
Its settings, unless the spec gives them (torch's names):

- num_workers: 0 for a data set already in memory as tensors (indexing a tensor costs less
  than a worker's IPC); else one per CPU this process may use, less one for the training
  loop, at most 8;
- pin_memory: when training on CUDA (faster, asynchronous host-to-device copies);
- persistent_workers: when there are workers (not restarted every epoch).

The DataLoader path yields the same batches, in the same order, as the in-memory path: its
sampler draws the same seeded permutation each epoch (`epoch_order`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, TensorDataset

from declarative.data.batches import EpochPosition, Transform, augment_generator, epoch_order, epoch_seed, shard

__all__ = ["EpochSampler", "LoaderBatches", "LoaderSettings", "loader_settings", "memory_budget", "usable_cpus",
           "describe_size"]

# The share of free memory (RAM, or GPU memory on CUDA) that data may take to be held in memory.
MEMORY_FRACTION = 0.5
MAX_WORKERS = 8


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_ram() -> int:
    """Bytes of RAM available to new allocations without swapping (Linux MemAvailable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**32  # unknown: assume 4 GiB


def memory_budget(device: torch.device) -> int:
    """Bytes of data a run may hold in memory on `device`."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * MEMORY_FRACTION)
    return int(available_ram() * MEMORY_FRACTION)


def describe_size(nbytes: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.{0 if nbytes >= 10 * size else 1}f} {unit}"
    return f"{nbytes} B"


def _in_memory(dataset: Dataset) -> bool:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return isinstance(dataset, TensorDataset)


@dataclass(frozen=True)
class LoaderSettings:
    """The DataLoader arguments of a run."""

    num_workers: int
    pin_memory: bool
    persistent_workers: bool

    def describe(self) -> str:
        workers = f"{self.num_workers} worker{'s' if self.num_workers != 1 else ''}"
        return ", ".join([workers] + (["pinned memory"] if self.pin_memory else [])
                         + (["persistent workers"] if self.persistent_workers else []))


def loader_settings(spec, device: torch.device, dataset: Dataset) -> LoaderSettings:
    """The spec's DataLoader settings, each one it leaves out chosen for this machine and data."""
    data = spec.data
    workers = data.num_workers
    if workers is None:
        workers = 0 if _in_memory(dataset) else min(MAX_WORKERS, usable_cpus() - 1)
    pin = data.pin_memory if data.pin_memory is not None else device.type == "cuda"
    persistent = data.persistent_workers if data.persistent_workers is not None else workers > 0
    return LoaderSettings(workers, pin, persistent and workers > 0)


class EpochSampler(Sampler[int]):
    """Sample indices in the seeded order of an epoch: the order `Batches` uses for the same seed, and
    in a multi-process run this process's share of it (`shard`), as DistributedSampler does.

    Args:
        num_samples: Size of the data set.
        seed: With the epoch (`set_epoch`), seeds the order.
        shuffle: A new seeded order each epoch; False keeps the data's order.
        rank, num_replicas: This process's share; shuffled (training) shares are padded to equal sizes.
    """

    def __init__(self, num_samples: int, seed: int, *, shuffle: bool = True, rank: int = 0, num_replicas: int = 1):
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.num_replicas = num_replicas
        self.epoch = 0
        self.start = 0  # samples of the next iteration to skip (a resumed epoch), never read

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> torch.Tensor:
        order = epoch_order(self.num_samples, self.seed, self.epoch) if self.shuffle else torch.arange(self.num_samples)
        return shard(order, self.rank, self.num_replicas, even=self.shuffle)

    def __len__(self) -> int:
        if self.num_replicas == 1:
            return self.num_samples
        if self.shuffle:
            return -(-self.num_samples // self.num_replicas)
        return len(range(self.rank, self.num_samples, self.num_replicas))

    def __iter__(self) -> Iterator[int]:
        start, self.start = self.start, 0
        return iter(self._order()[start:].tolist())


class LoaderBatches(EpochPosition):
    """Batches read through a torch DataLoader, moved to `device` and transformed there, batch-wise.

    Args:
        dataset: Per-sample `(input, target)` tensors.
        batch_size: Samples per batch; the last batch holds the rest, unless `drop_last`.
        device: Where the batches go.
        settings: num_workers, pin_memory, persistent_workers.
        transform: As `Batches`' transform: ``transform(x, generator)``, on the device.
        shuffle: A new seeded order each epoch (`set_epoch`); False keeps the data's order.
        seed: Seeds the order and the transforms' draws.
        rank, num_replicas: This process's share of a multi-process run (see `EpochSampler`).
        drop_last: Leave out the last batch when it is short (DataLoader's drop_last). Default: False
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, device: torch.device, settings: LoaderSettings,
                 transform: Transform | None = None, shuffle: bool = False, seed: int = 0, rank: int = 0,
                 num_replicas: int = 1, drop_last: bool = False):
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.settings = settings
        self.transform = transform
        self.seed = seed
        self.rank = rank
        self.epoch = 0
        super().__init__()
        self.sampler = EpochSampler(len(dataset), seed, shuffle=shuffle, rank=rank, num_replicas=num_replicas)
        self.loader = DataLoader(
            dataset, batch_size=batch_size, sampler=self.sampler, num_workers=settings.num_workers,
            pin_memory=settings.pin_memory, persistent_workers=settings.persistent_workers, drop_last=drop_last,
            # Seeds the workers' base seed, which would otherwise draw from (and move) the global RNG.
            generator=torch.Generator().manual_seed(seed),
        )

    @property
    def num_samples(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)
        if not self.settings.persistent_workers:
            # Workers started afresh each epoch draw their seeds from the epoch's own seed: a resumed epoch's
            # workers get the seeds a run that never stopped gave them. (Persistent workers draw theirs once,
            # the first draw of `seed`, whichever epoch starts them.)
            self.loader.generator.manual_seed(epoch_seed(self.seed, epoch))

    def __len__(self) -> int:
        samples = len(self.sampler)  # the whole epoch's, a resumed one's too
        return samples // self.batch_size if self.loader.drop_last else -(-samples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        non_blocking = self.settings.pin_memory
        generator = (augment_generator(self.device, self.seed, self.epoch, self.rank) if self.transform is not None
                     else None)
        # A resumed epoch: the sampler starts after the batches already trained on, which are not read again.
        self.sampler.start = self._start(generator) * self.batch_size
        for x, y in self.loader:
            self._yielded += 1
            x = x.to(self.device, non_blocking=non_blocking)
            y = torch.as_tensor(y).to(self.device, non_blocking=non_blocking)
            if not (y.is_floating_point() or y.is_complex() or y.dtype == torch.bool or y.dtype == torch.int64):
                y = y.long()  # losses take class indices as int64, as the in-memory path holds them
            yield (self.transform(x, generator) if self.transform is not None else x), y

    def __repr__(self) -> str:
        return (f"LoaderBatches(num_samples={self.num_samples}, batch_size={self.batch_size}, "
                f"shuffle={self.sampler.shuffle}, device={self.device}, {self.settings.describe()})")
