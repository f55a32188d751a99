"""The rest of torchvision's classification data sets, by their class name and with their own arguments.

Each entry builds the torchvision class with the spec's keyword arguments (read from the class's
signature, so the JSON schema knows them) and no transform: the spec's transforms run on batches.
The split is not an argument: torchvision's ``train: true/false`` gives the splits train and test,
and its ``split:`` argument gives the splits it names (``val: {split: val}`` picks one). Where
torchvision has no split called ``train``, its training split is called train here
(OxfordIIITPet's ``trainval``, Places365's ``train-standard``).

Samples are read whole when the class holds them as arrays (``.data`` with ``.targets`` or
``.labels``); otherwise one by one, each PIL image becoming a uint8 (C, H, W) tensor.
"""

from __future__ import annotations

import inspect
import re
from functools import partial
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset
from torchvision import datasets
from torchvision.transforms.v2 import functional as TF

from declarative.data.images import stack_samples
from declarative.data.sources import SOURCES, Source, SourceError, TensorSplit
from declarative.registry import Entry, Param, first_line, signature_params

__all__ = ["TorchvisionDataset", "SPLITS"]

# Each class's splits: dtrain's split name → the value of torchvision's `split` argument
# (`train` for classes with a `train: bool` argument, None for classes with one split).
_TRAIN_TEST = {"train": True, "test": False}
SPLITS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "USPS": ("train", _TRAIN_TEST),
    "Country211": ("split", {"train": "train", "val": "valid", "test": "test"}),
    "DTD": ("split", {"train": "train", "val": "val", "test": "test"}),
    "FER2013": ("split", {"train": "train", "test": "test"}),
    "FGVCAircraft": ("split", {"train": "train", "val": "val", "trainval": "trainval", "test": "test"}),
    "Flowers102": ("split", {"train": "train", "val": "val", "test": "test"}),
    "Food101": ("split", {"train": "train", "test": "test"}),
    "GTSRB": ("split", {"train": "train", "test": "test"}),
    "ImageNet": ("split", {"train": "train", "val": "val"}),
    "Imagenette": ("split", {"train": "train", "val": "val"}),
    "LFWPeople": ("split", {"train": "train", "test": "test"}),
    "OxfordIIITPet": ("split", {"train": "trainval", "test": "test"}),
    "PCAM": ("split", {"train": "train", "val": "val", "test": "test"}),
    "Places365": ("split", {"train": "train-standard", "val": "val"}),
    "RenderedSST2": ("split", {"train": "train", "val": "val", "test": "test"}),
    "StanfordCars": ("split", {"train": "train", "test": "test"}),
    "Caltech101": (None, {"train": None}),
    "Caltech256": (None, {"train": None}),
    "EuroSAT": (None, {"train": None}),
    "SUN397": (None, {"train": None}),
    "SEMEION": (None, {"train": None}),
    "Omniglot": (None, {"train": None}),
    "FakeData": (None, {"train": None}),
}

# Arguments dtrain sets itself: no transforms (the spec's run on batches), torchvision's loader.
_SKIP = ("transform", "target_transform", "transforms", "loader", "is_valid_file")


def _target(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (int, np.integer)):
        return torch.tensor(int(value), dtype=torch.int64)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    raise SourceError(f"{name} gives targets of type {type(value).__name__}; dtrain trains on one class index or "
                      f"tensor per sample (check its target_type argument)")


def _image(value: Any) -> torch.Tensor:
    if isinstance(value, Image.Image):
        return TF.pil_to_tensor(value)
    if isinstance(value, torch.Tensor):
        return value.as_subclass(torch.Tensor)
    return torch.as_tensor(np.asarray(value))


def _images(data: Any) -> torch.Tensor:
    """A class's whole `.data` as (N, C, H, W): MNIST-like (N, H, W) gains a channel dim, CIFAR-like
    (N, H, W, C) with C of 1, 3 or 4 is permuted, (N, C, H, W) stays."""
    tensor = torch.as_tensor(np.ascontiguousarray(data)) if not isinstance(data, torch.Tensor) else data
    if tensor.dim() == 3:
        return tensor.unsqueeze(1)
    if tensor.dim() == 4 and tensor.shape[-1] in (1, 3, 4) and tensor.shape[1] not in (1, 3, 4):
        return tensor.permute(0, 3, 1, 2).contiguous()
    return tensor


def _sample_name(dataset: Dataset, index: int) -> str:
    """How an error names sample `index`: its file where the class lists files."""
    samples = getattr(dataset, "samples", None) or getattr(dataset, "_samples", None)
    files = getattr(dataset, "_image_files", None)
    if isinstance(samples, list) and samples and isinstance(samples[index], tuple):
        return str(samples[index][0])
    if isinstance(files, list) and files:
        return str(files[index])
    return f"sample {index}"


class _Samples(Dataset):
    """A torchvision data set's samples as tensors, read one by one."""

    def __init__(self, dataset: Dataset, name: str, resize: Callable | None):
        self.dataset, self.name, self.resize = dataset, name, resize

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = self.dataset[index]
        image = _image(image)
        return (self.resize(image) if self.resize else image), _target(target, self.name)


class TorchvisionDataset(Source):
    """A torchvision data set class, built with the spec's arguments and no transforms.

    Args:
        dataset: The torchvision class, e.g. ``torchvision.datasets.USPS``.
        **kwargs: Its keyword arguments, less the split, as the spec gives them.
    """

    def __init__(self, dataset: type, **kwargs: Any):
        self.cls = dataset
        self.kwargs = {"download": False, **kwargs} if "download" in inspect.signature(dataset).parameters else kwargs
        self.split_argument, self.splits = SPLITS[dataset.__name__]
        self.split_names = tuple(self.splits)
        self.resize: Callable | None = None  # set from the spec's transforms (splits.py) before loading
        self._built: dict[str, Dataset] = {}

    def _dataset(self, split: str) -> Dataset:
        if split not in self._built:
            self._built[split] = self._build(split)
        return self._built[split]

    def _build(self, split: str) -> Dataset:
        name = self.cls.__name__
        kwargs = dict(self.kwargs)
        if self.split_argument is not None:
            kwargs[self.split_argument] = self.splits[split]
        download = kwargs.get("download", False)
        root = kwargs.get("root")
        try:
            return self.cls(**kwargs)
        except ImportError as exc:
            raise SourceError(f"{name} needs the Python package '{exc.name}', which is not installed: "
                              f"pip install {exc.name}") from None
        except Exception as exc:  # torchvision raises RuntimeError, FileNotFoundError, ... for absent files
            reason = " ".join(str(exc).split()) or type(exc).__name__
            if root is None:
                raise SourceError(f"{name} cannot be read: {reason}") from None
            if download:
                raise SourceError(f"could not download {name} into {root}: {reason}; put its files there "
                                  f"yourself", "download") from None
            raise SourceError(f"{name} files not found or not readable in {root} ({reason}); set `download: "
                              f"true` to download them, or put the files there", "root") from None

    def _arrays(self, dataset: Dataset) -> tuple[Any, Any] | None:
        """The class's whole data and targets, when it holds them as arrays."""
        data = getattr(dataset, "data", None)
        targets = getattr(dataset, "targets", getattr(dataset, "labels", None))
        if not isinstance(data, (np.ndarray, torch.Tensor)) or targets is None:
            return None
        if len(data) != len(dataset) or len(targets) != len(dataset):
            return None
        return data, targets

    def load(self, split: str) -> TensorSplit:
        dataset = self._dataset(split)
        arrays = self._arrays(dataset)
        if arrays is not None:
            data, targets = arrays
            targets = torch.as_tensor(np.asarray(targets)) if not isinstance(targets, torch.Tensor) else targets
            return TensorSplit(_images(data), targets)
        return stack_samples(self.dataset(split), partial(_sample_name, dataset), self.cls.__name__)

    def dataset(self, split: str) -> Dataset:
        dataset = self._dataset(split)
        if self._arrays(dataset) is not None:
            whole = self.load(split)
            return TensorDataset(whole.inputs, whole.targets)
        return _Samples(dataset, self.cls.__name__, self.resize)

    def nbytes(self, split: str) -> int | None:
        samples = self.dataset(split)
        return len(samples) * samples[0][0].nbytes if len(samples) else 0


def _register(cls: type) -> None:
    split_argument, splits = SPLITS[cls.__name__]
    params = signature_params(cls.__init__, skip=(*_SKIP, *([split_argument] if split_argument else [])))
    if params is None:
        return
    if "download" in params:  # never by default (SEMEION's own default is true): a run does not reach out unasked
        params["download"] = Param("download", {"type": "boolean", "default": False}, False)
    names = ", ".join(splits)
    doc = re.sub(r"`([^`<]+?)\s*<[^>]*>`_", r"\1", first_line(cls.__doc__)).rstrip(".")
    doc = f"{doc} (torchvision.datasets.{cls.__name__}): split{'s' if len(splits) > 1 else ''} {names}."
    SOURCES.add(Entry(cls.__name__, partial(TorchvisionDataset, cls), params, doc))


for _name in SPLITS:
    if hasattr(datasets, _name) and _name not in SOURCES:
        _register(getattr(datasets, _name))
