"""CIFAR10, CIFAR100, SVHN and STL10: torchvision's image data sets, read whole from their own files.

Each names torchvision's class and takes its arguments; `download: true` lets torchvision fetch
and verify the archive, exactly as `torchvision.datasets.CIFAR10(..., download=True)` does. The files
are then read here, straight into one uint8 (N, C, H, W) tensor per split, with no per-sample
decoding:

- CIFAR's python batches are pickles; they are read by an unpickler that builds numpy arrays, lists
  and dicts and nothing else, so a tampered file cannot run code (torchvision's own reader would).
- Files in the published format are accepted whatever their checksum, so a local copy, a subset or
  a test fixture in the same format loads too (torchvision's classes insist on the md5 of the
  published files).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torchvision import datasets

from declarative.data.sources import SOURCES, Described, Source, SourceError, TensorSplit

__all__ = ["CIFAR10", "CIFAR100", "SVHN", "STL10"]


class _Downloaded(Source):
    """A torchvision data set whose files sit under `root`; torchvision downloads them on request."""

    torchvision_class: ClassVar[type]
    # The published format: one sample's (C, H, W) uint8 shape, and the number of classes.
    sample_shape: ClassVar[tuple[int, ...]] = (3, 32, 32)
    num_classes: ClassVar[int] = 10

    def __init__(self, root: str, download: bool = False):
        self.root = root
        self.download = download

    def describe(self, split: str) -> Described:
        return Described(self.sample_shape, torch.uint8, self.num_classes)

    @property
    def folder(self) -> Path:
        """Where the data set's files are."""
        return Path(self.root)

    def files(self, split: str) -> list[str]:
        """The file names a split reads, in `folder`."""
        raise NotImplementedError

    def fetch(self, split: str) -> None:
        """Download the split's files with torchvision's class (it verifies the archive's md5)."""
        self.torchvision_class(self.root, download=True)

    def read(self, split: str) -> TensorSplit:
        raise NotImplementedError

    def load(self, split: str) -> TensorSplit:
        name = type(self).__name__
        missing = [f for f in self.files(split) if not (self.folder / f).is_file()]
        if missing and not self.download:
            raise SourceError(f"{name} files not found in {self.folder} (missing: {', '.join(missing)}); "
                              f"set `download: true` to download them, or put the files there", "root")
        if missing:
            try:
                self.fetch(split)
            except Exception as exc:  # network, disk or archive problems: all end in the same advice
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise SourceError(f"could not download {name} into {self.folder}: {reason}; "
                                  f"put the files ({', '.join(missing)}) there yourself", "download") from None
        try:
            return self.read(split)
        except SourceError:
            raise
        except (ValueError, OSError, EOFError, KeyError, IndexError, TypeError, pickle.UnpicklingError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise SourceError(f"the {name} files in {self.folder} are not in {name}'s format: {reason}",
                              "root") from None


# --------------------------------------------------------------------------- CIFAR

class _ArrayUnpickler(pickle.Unpickler):
    """Builds what CIFAR's batches hold (dicts, lists, strings, numpy arrays) and refuses any other class."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a data file has no need of "
                                         f"(refused: unpickling it could run code)")
        return super().find_class(module, name)


def read_cifar_batch(file: Path) -> dict:
    """One CIFAR python batch (a pickled dict), without running code from the file."""
    try:
        entry = _ArrayUnpickler(io.BytesIO(file.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"{file.name}: {exc}") from None
    if not isinstance(entry, dict):
        raise ValueError(f"{file.name} holds a {type(entry).__name__}, not a dict of 'data' and labels")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


class CIFAR10(_Downloaded):
    """CIFAR-10, 60k 32x32 colour images in 10 classes (torchvision.datasets.CIFAR10): splits train and test.

    Args:
        root: Folder that holds ``cifar-10-batches-py/`` (the python version's batches).
        download: Download and extract the archive when files are missing.
    """

    split_names = ("train", "test")
    torchvision_class = datasets.CIFAR10
    label_key = "labels"

    @property
    def folder(self) -> Path:
        return Path(self.root) / self.torchvision_class.base_folder

    def files(self, split: str) -> list[str]:
        return [name for name, _ in (self.torchvision_class.train_list if split == "train" else self.torchvision_class.test_list)]

    def fetch(self, split: str) -> None:
        self.torchvision_class(self.root, train=split == "train", download=True)

    def read(self, split: str) -> TensorSplit:
        images, labels = [], []
        for name in self.files(split):
            entry = read_cifar_batch(self.folder / name)
            if "data" not in entry or self.label_key not in entry:
                raise ValueError(f"{name} has keys {sorted(entry)}; a {type(self).__name__} batch has 'data' "
                                 f"and '{self.label_key}'")
            images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))  # rows are CHW
            labels.extend(entry[self.label_key])
        return TensorSplit(torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.int64))


class CIFAR100(CIFAR10):
    """CIFAR-100, 60k 32x32 colour images in 100 classes (torchvision.datasets.CIFAR100): splits train and test.

    The targets are the 100 fine labels, as torchvision gives them.

    Args:
        root: Folder that holds ``cifar-100-python/``.
        download: Download and extract the archive when files are missing.
    """

    torchvision_class = datasets.CIFAR100
    label_key = "fine_labels"
    num_classes = 100


# --------------------------------------------------------------------------- SVHN

class SVHN(_Downloaded):
    """Street View House Numbers, 32x32 colour digits (torchvision.datasets.SVHN): splits train, test and extra.

    Digit 0 is class 0 (the files label it 10), as torchvision gives it. Reading the ``.mat`` files
    needs scipy (``pip install scipy``).

    Args:
        root: Folder that holds ``train_32x32.mat``, ``test_32x32.mat`` (and ``extra_32x32.mat``).
        download: Download the split's file when it is missing.
    """

    split_names = ("train", "test", "extra")
    torchvision_class = datasets.SVHN

    def files(self, split: str) -> list[str]:
        return [self.torchvision_class.split_list[split][1]]

    def fetch(self, split: str) -> None:
        self.torchvision_class(self.root, split=split, download=True)

    def read(self, split: str) -> TensorSplit:
        try:
            from scipy.io import loadmat
        except ImportError:
            raise SourceError("SVHN's .mat files are read with scipy, which is not installed: pip install scipy",
                              "root") from None
        file = self.folder / self.files(split)[0]
        loaded = loadmat(str(file), variable_names=["X", "y"])  # a matlab file: data, never code
        if "X" not in loaded or "y" not in loaded:
            raise ValueError(f"{file.name} has no 'X' and 'y' arrays")
        images = np.ascontiguousarray(np.transpose(loaded["X"], (3, 2, 0, 1)), dtype=np.uint8)  # HWCN → NCHW
        labels = loaded["y"].astype(np.int64).reshape(-1)
        labels[labels == 10] = 0
        return TensorSplit(torch.from_numpy(images), torch.from_numpy(labels))


# --------------------------------------------------------------------------- STL10

class STL10(_Downloaded):
    """STL-10, 96x96 colour images in 10 classes (torchvision.datasets.STL10): splits train and test.

    The 100k unlabeled images are not a split here: they have no targets to train on.

    Args:
        root: Folder that holds ``stl10_binary/``.
        folds: One of the 10 predefined training folds (0-9) to train on instead of all 5000 images.
        download: Download and extract the archive when files are missing.
    """

    split_names = ("train", "test")
    torchvision_class = datasets.STL10
    sample_shape = (3, 96, 96)

    def __init__(self, root: str, folds: int | None = None, download: bool = False):
        super().__init__(root, download)
        if folds is not None and not 0 <= folds < 10:
            raise SourceError(f"folds is {folds}; STL10 has folds 0 to 9", "folds")
        self.folds = folds

    @property
    def folder(self) -> Path:
        return Path(self.root) / self.torchvision_class.base_folder

    def files(self, split: str) -> list[str]:
        names = [f"{split}_X.bin", f"{split}_y.bin"]  # images and labels, as torchvision names them
        if split == "train" and self.folds is not None:
            names.append(self.torchvision_class.folds_list_file)
        return names

    def fetch(self, split: str) -> None:
        self.torchvision_class(self.root, split=split, download=True)

    def read(self, split: str) -> TensorSplit:
        images_file, labels_file = self.files(split)[:2]
        images = np.fromfile(self.folder / images_file, dtype=np.uint8)
        if images.size % (3 * 96 * 96):
            raise ValueError(f"{images_file} holds {images.size} bytes, not a whole number of 3x96x96 images")
        # Stored column-major: swap H and W to get the upright NCHW images torchvision gives.
        images = np.ascontiguousarray(images.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2))
        labels = np.fromfile(self.folder / labels_file, dtype=np.uint8).astype(np.int64) - 1  # files count from 1
        if split == "train" and self.folds is not None:
            lines = (self.folder / self.torchvision_class.folds_list_file).read_text().splitlines()
            if self.folds >= len(lines):
                raise SourceError(f"{self.torchvision_class.folds_list_file} has {len(lines)} folds, so there is no fold "
                                  f"{self.folds}", "folds")
            index = np.array(lines[self.folds].split(), dtype=np.int64)
            images, labels = images[index], labels[index]
        return TensorSplit(torch.from_numpy(images), torch.from_numpy(labels))


for _source in (CIFAR10, CIFAR100, SVHN):
    SOURCES.add_class(_source)
SOURCES.add_class(STL10, constraints={"folds": {"minimum": 0, "maximum": 9}})
