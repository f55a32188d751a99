"""Data sources: where a spec's samples come from, loaded whole into tensors.

A source names its splits (`split_names`) and loads one at a time as a `TensorSplit`
(inputs and targets, one row per sample). That is the whole interface, so a new kind of source
(CSV, ImageFolder, any torchvision data set) is one more class here and nothing else changes.

Problems a user can cause (a missing file, a file without the named arrays) raise
`SourceError`, which names the keyword argument at fault; `SourceError.at` turns it into a
located spec error at that argument's line.
"""

from __future__ import annotations

import importlib
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from declarative.errors import SpecError
from declarative.registry import Registry
from declarative.safe_load import UnreadableFile, load_weights_only

__all__ = ["SOURCES", "Source", "SourceError", "TensorSplit", "Described", "ArrayFile",
           "MNIST", "FashionMNIST", "KMNIST", "QMNIST", "EMNIST"]

SOURCES = Registry("data source", list_command="dtrain layers --kind source")


class SourceError(Exception):
    """A data problem a user can fix, at one keyword argument of the source (or the source itself)."""

    def __init__(self, message: str, argument: str | None = None):
        super().__init__(message)
        self.message = message
        self.argument = argument

    def at(self, spec, component) -> SpecError:
        """The located error: at `component`'s `argument` line when the spec wrote it there."""
        path = component.path + (component.name, self.argument) if self.argument else component.path
        return spec.error(path, self.message)


@dataclass(frozen=True, eq=False)  # tensors have no single truth value to compare
class TensorSplit:
    """One split in memory: `inputs` (N, *sample) and `targets` (N, *target); row i is sample i."""

    inputs: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def subset(self, index: torch.Tensor) -> "TensorSplit":
        """The samples at `index` (a 1-D index tensor), in that order."""
        return TensorSplit(self.inputs[index], self.targets[index])

    def to(self, device: torch.device | str) -> "TensorSplit":
        return TensorSplit(self.inputs.to(device), self.targets.to(device))


@dataclass(frozen=True)
class Described:
    """A split as a source knows it without reading its samples: what `load` would give."""

    shape: tuple[int, ...]  # one input sample, without the sample dim
    dtype: torch.dtype  # the inputs' dtype
    num_classes: int | None  # max target + 1; labels L of multi-label 0/1 targets (N, L); None for float targets
    exact: bool = False  # read from the files themselves, not the published format's nominal values


class Source:
    """Base class of data sources: named splits, each loaded whole as a `TensorSplit`,
    or read sample by sample as a `torch.utils.data.Dataset`."""

    split_names: tuple[str, ...] = ("train",)

    def describe(self, split: str) -> Described | None:
        """The split's sample shape, dtype and class count, known without reading its samples
        (a fixed published format, a file header); None when they cannot be known so.

        It never downloads and never raises for absent files: `dtrain validate` checks a model against
        it on machines without the data.
        """
        return None

    def targets(self, split: str) -> torch.Tensor:
        """The split's targets, as `load(split)` gives them; a source whose files keep the targets
        apart overrides it to read them alone. Missing files are a SourceError, as in `load`."""
        return self.load(split).targets

    def load(self, split: str) -> TensorSplit:
        raise NotImplementedError

    def dataset(self, split: str) -> Dataset:
        """The split as a data set of `(input, target)` tensor pairs, for a DataLoader.

        Default: a TensorDataset over `load(split)`. A source that reads one file per sample
        overrides it to read lazily.
        """
        data = self.load(split)
        return TensorDataset(data.inputs, data.targets)

    def nbytes(self, split: str) -> int | None:
        """The split's estimated size in memory (inputs and targets as `load` returns them), in bytes.

        Default: None, unknown; dtrain then loads the split and measures it.
        """
        return None


# --------------------------------------------------------------------------- array files

class ArrayFile(Source):
    """Inputs and targets arrays from a .npz file (numpy.savez), a .pt dict of tensors or two .npy files: split train.

    Args:
        path: The file, relative to the spec's folder. ``.npz`` and ``.npy`` are read with
            ``numpy.load(allow_pickle=False)``, ``.pt`` with ``torch.load(weights_only=True)``:
            none runs code from the file. A ``.npy`` file holds the inputs array alone.
        inputs: Name of the inputs array, shape (N, *sample). Default: ``inputs``.
        targets: Name of the targets array, shape (N,) for class indices. Default: ``targets``.
            With a ``.npy`` path: the targets' ``.npy`` file, in the same folder as ``path``
            (``targets`` alone means ``targets.npy``).
    """

    def __init__(self, path: str, inputs: str = "inputs", targets: str = "targets"):
        self.path = path
        self.inputs = inputs
        self.targets = targets

    def load(self, split: str) -> TensorSplit:
        file = Path(self.path)
        if not file.exists():
            raise SourceError(f"no such file: {file}", "path")
        if not file.is_file():
            raise SourceError(f"{file} is a folder; ArrayFile reads one .npz or .pt file", "path")
        suffix = file.suffix.lower()
        wanted = (self.inputs, self.targets)
        if suffix == ".npz":
            names, arrays = _read_npz(file, wanted)
        elif suffix in (".pt", ".pth"):
            names, arrays = _read_pt(file)
        elif suffix == ".npy":
            targets = file.parent / (self.targets if self.targets.endswith(".npy") else f"{self.targets}.npy")
            if not targets.is_file():
                raise SourceError(f"no such file: {targets} (the targets of {file.name}); set `targets:` to the "
                                  f".npy file of the targets, next to {file.name}", "targets")
            return TensorSplit(_read_npy(file, "path"), _read_npy(targets, "targets"))
        else:
            raise SourceError(f"{file.name}: ArrayFile reads .npz (numpy.savez), .npy (numpy.save) or .pt "
                              f"(torch.save of a dict of tensors) files, not '{suffix or 'no suffix'}'", "path")
        for argument, name in zip(("inputs", "targets"), wanted):
            if name not in arrays:
                has = ", ".join(f"'{n}'" for n in names) or "none"
                raise SourceError(f"{file.name} has no array '{name}' (its arrays: {has}); "
                                  f"set `{argument}:` to the name of the {argument} array", argument)
        return TensorSplit(arrays[self.inputs], arrays[self.targets])

    def describe(self, split: str) -> Described | None:
        """From the .npz/.npy headers (the inputs stay unread) and the targets array; None for .pt
        files (read whole) and for files that are absent or not in the format."""
        file = Path(self.path)
        suffix = file.suffix.lower()
        try:
            if suffix == ".npz":
                with np.load(file, allow_pickle=False, mmap_mode="r") as loaded:  # a lazy view of the archive
                    shape, dtype = _npz_header(loaded.zip, f"{self.inputs}.npy")
                    targets = loaded[self.targets]
            elif suffix == ".npy":
                inputs = np.load(file, allow_pickle=False, mmap_mode="r")
                shape, dtype = inputs.shape, inputs.dtype
                name = self.targets if self.targets.endswith(".npy") else f"{self.targets}.npy"
                targets = np.load(file.parent / name, allow_pickle=False, mmap_mode="r")
            else:
                return None
            shape, dtype = tuple(shape), _torch_dtype(dtype)
        except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile):  # absent, or not in the
            return None  # format: load says why
        if not shape or dtype is None or targets.ndim == 0 or targets.size == 0 or targets.dtype.kind not in "biuf":
            return None
        integer = targets.dtype.kind in "biu" and targets.dtype != np.bool_
        return Described(shape[1:], dtype, int(np.max(targets)) + 1 if integer else None, exact=True)


def _npz_header(archive, member: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of the array `member` of a .npz archive, from its header alone."""
    from numpy.lib import format as npy_format

    with archive.open(member) as f:
        version = npy_format.read_magic(f)
        read_header = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f"npy format version {version}")
        shape, _, dtype = read_header(f)
    return shape, dtype


def _torch_dtype(dtype: np.dtype) -> torch.dtype | None:
    try:
        return torch.from_numpy(np.zeros(0, dtype=dtype.newbyteorder("="))).dtype
    except TypeError:
        return None


def _read_npz(file: Path, wanted: tuple[str, ...]) -> tuple[list[str], dict[str, torch.Tensor]]:
    """The names of a .npz's arrays, and the wanted ones as tensors (the others stay unread)."""
    with open(file, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise SourceError(f"{file.name} holds a single array (.npy format); ArrayFile needs a .npz with an "
                          f"inputs and a targets array: numpy.savez(path, inputs=..., targets=...)", "path")
    if not magic.startswith(b"PK"):  # numpy would try pickle here, and suggest allowing it
        raise SourceError(f"{file.name} is not a .npz file (a zip archive written by numpy.savez)", "path")
    if not zipfile.is_zipfile(file):  # numpy would fall back to pickle, and suggest allowing it
        raise SourceError(f"{file.name} is not a readable .npz file (its zip archive is damaged or cut short); "
                          f"was it copied whole?", "path")
    try:
        loaded = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # e.g. a damaged archive
        if "pickle" in str(exc):  # numpy's advice here is to allow pickle: never
            raise SourceError(f"{file.name} holds Python objects (pickled object arrays), which dtrain never loads; "
                              f"store numeric arrays", "path") from None
        raise SourceError(f"{file.name} is not a readable .npz file ({exc}); was it copied whole?", "path") from None
    with loaded:
        arrays: dict[str, torch.Tensor] = {}
        for name in wanted:
            if name not in loaded.files:
                continue
            try:
                array = loaded[name]
            except ValueError:  # object arrays need pickle, which is never allowed (nor suggested)
                raise SourceError(f"{file.name}: array '{name}' holds Python objects (a pickled object array), "
                                  f"which dtrain never loads; store numeric arrays", "path") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # a damaged member
                raise SourceError(f"{file.name}: array '{name}' cannot be read ({exc}); was the file copied "
                                  f"whole?", "path") from None
            arrays[name] = _tensor(array, file, name)
        return list(loaded.files), arrays


def _read_npy(file: Path, argument: str) -> torch.Tensor:
    """One array from a .npy file (numpy.save), never unpickling objects."""
    with open(file, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        why = "it is a .npz archive: name it .npz" if magic.startswith(b"PK") else "a file written by numpy.save"
        raise SourceError(f"{file.name} is not a .npy file ({why})", argument)
    try:
        array = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # object arrays need pickle, which is never allowed; a truncated file
        if "pickle" in str(exc):  # numpy's advice here is to allow pickle: never
            raise SourceError(f"{file.name} holds Python objects (a pickled object array), which dtrain never "
                              f"loads; store a numeric array", argument) from None
        raise SourceError(f"{file.name} is not a readable numeric .npy file ({exc})", argument) from None
    return _tensor(array, file, file.stem, argument)


def _tensor(array: np.ndarray, file: Path, name: str, argument: str = "path") -> torch.Tensor:
    if not array.dtype.isnative:  # torch holds native byte order only
        array = array.astype(array.dtype.newbyteorder("="))
    try:
        return torch.from_numpy(np.ascontiguousarray(array))
    except TypeError:
        raise SourceError(f"{file.name}: array '{name}' has dtype {array.dtype}, which torch cannot hold; "
                          f"store numbers", argument) from None


def _read_pt(file: Path) -> tuple[list[str], dict[str, torch.Tensor]]:
    """The tensors of a .pt file saved as a dict of tensors, loaded without running pickled code."""
    try:
        loaded = load_weights_only(file)
    except UnreadableFile as exc:
        if not exc.pickled_objects:
            raise SourceError(f"{file.name} is not a file written by torch.save ({exc.reason})", "path") from None
        raise SourceError(f"{file.name} holds Python objects ({exc.reason}), which dtrain never loads; "
                          f"save a dict of tensors: torch.save({{'inputs': x, 'targets': y}}, path)",
                          "path") from None
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise SourceError(f"{file.name} holds a {type(loaded).__name__}, not a dict of tensors; "
                          f"save torch.save({{'inputs': x, 'targets': y}}, path)", "path")
    arrays = {str(k): v for k, v in loaded.items()}
    return list(arrays), arrays


# --------------------------------------------------------------------------- MNIST family

class _IdxDataset(Source):
    """A torchvision MNIST-style data set, read from its IDX files; splits train and test.

    torchvision's class parses the files; its `.data` (N, 28, 28) uint8 and `.targets` are taken
    whole, so no per-sample PIL path runs.
    """

    split_names = ("train", "test")
    torchvision_name: ClassVar[str]  # the torchvision.datasets class, imported when the files are read

    @property
    def torchvision_class(self) -> type:
        from torchvision import datasets

        return getattr(datasets, self.torchvision_name)

    def __init__(self, root: str, download: bool = False):
        self.root = root
        self.download = download

    @property
    def raw_folder(self) -> Path:
        return Path(self.root) / self.torchvision_name / "raw"

    def raw_files(self) -> list[str]:
        """The file names torchvision reads from `raw_folder`, for both splits."""
        return [Path(name).stem for name, _ in self.torchvision_class.resources]  # drop the .gz of the download

    def dataset_kwargs(self) -> dict:
        return {}

    def load(self, split: str) -> TensorSplit:
        name = self.torchvision_name
        missing = [f for f in self.raw_files() if not (self.raw_folder / f).is_file()]
        if missing and not self.download:
            raise SourceError(f"{name} files not found in {self.raw_folder} (missing: {', '.join(missing)}); "
                              f"set `download: true` to download them, or put the files there", "root")
        try:
            data = self.torchvision_class(self.root, train=split == "train", download=bool(missing), **self.dataset_kwargs())
        except (AssertionError, TypeError, ValueError, RuntimeError, KeyError, IndexError, OSError, EOFError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            if missing:
                raise SourceError(f"could not download {name} into {self.raw_folder}: {reason}; "
                                  f"put the files ({', '.join(missing)}) there yourself", "download") from None
            raise SourceError(f"the {name} files in {self.raw_folder} are not valid IDX files: {reason}",
                              "root") from None
        inputs = data.data.unsqueeze(1)  # (N, 1, 28, 28): the channel dim images have
        return TensorSplit(inputs, self.class_targets(data.targets))

    def class_targets(self, targets: torch.Tensor) -> torch.Tensor:
        return targets

    # The published format: 28x28 uint8 images in one channel, and this many classes.
    num_classes: ClassVar[int | None] = 10

    def describe(self, split: str) -> Described | None:
        return Described((1, 28, 28), torch.uint8, self.num_classes)

    def label_file(self, split: str) -> str:
        """The split's labels file in `raw_folder`."""
        prefix = "train" if split == "train" else "t10k"
        return next(f for f in self.raw_files() if f.startswith(f"{prefix}-labels"))

    def targets(self, split: str) -> torch.Tensor:
        """The labels file alone (the images stay unread); never downloads."""
        from torchvision.datasets.mnist import read_label_file

        file = self.raw_folder / self.label_file(split)
        if not file.is_file():
            raise SourceError(f"{self.torchvision_name} files not found in {self.raw_folder} "
                              f"(missing: {file.name})", "root")
        try:
            return self.class_targets(read_label_file(str(file)))
        except (TypeError, ValueError, RuntimeError, KeyError, OSError) as exc:
            raise SourceError(f"{file} is not a valid IDX labels file: {exc}", "root") from None


class MNIST(_IdxDataset):
    """The MNIST handwritten digits (torchvision.datasets.MNIST): splits train and test."""

    torchvision_name = "MNIST"


class FashionMNIST(_IdxDataset):
    """Fashion-MNIST clothing images (torchvision.datasets.FashionMNIST): splits train and test."""

    torchvision_name = "FashionMNIST"


class KMNIST(_IdxDataset):
    """Kuzushiji-MNIST cursive Japanese characters (torchvision.datasets.KMNIST): splits train and test."""

    torchvision_name = "KMNIST"


class QMNIST(_IdxDataset):
    """QMNIST, MNIST with its 60k lost test digits restored (torchvision.datasets.QMNIST): splits train and test."""

    torchvision_name = "QMNIST"

    def raw_files(self) -> list[str]:
        urls = [url for part in ("train", "test") for url, _ in self.torchvision_class.resources[part]]
        return [Path(url).stem for url in urls]

    def class_targets(self, targets: torch.Tensor) -> torch.Tensor:
        return targets[:, 0]  # QMNIST's targets are (N, 8) records; column 0 is the digit

    def targets(self, split: str) -> torch.Tensor:
        return Source.targets(self, split)  # its labels file is not IDX-1: read as load reads it


EMNISTSplit = Literal["byclass", "bymerge", "balanced", "letters", "digits", "mnist"]
# Classes of each EMNIST set, as max target + 1: the letters' targets run 1..26, as torchvision gives them.
EMNIST_CLASSES = {"byclass": 62, "bymerge": 47, "balanced": 47, "letters": 27, "digits": 10, "mnist": 10}


class EMNIST(_IdxDataset):
    """Extended MNIST letters and digits (torchvision.datasets.EMNIST): splits train and test.

    Args:
        root: Folder that holds ``EMNIST/raw/``.
        split: Which EMNIST set: byclass, bymerge, balanced, letters, digits or mnist.
        download: Download the files when they are missing.
    """

    torchvision_name = "EMNIST"

    def __init__(self, root: str, split: EMNISTSplit, download: bool = False):
        super().__init__(root, download)
        self.split = split
        self.num_classes = EMNIST_CLASSES.get(split)

    def label_file(self, split: str) -> str:
        return f"emnist-{self.split}-{split}-labels-idx1-ubyte"

    def raw_files(self) -> list[str]:
        return [f"emnist-{self.split}-{part}-{kind}" for part in ("train", "test")
                for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]

    def dataset_kwargs(self) -> dict:
        return {"split": self.split}


for _source in (ArrayFile, MNIST, FashionMNIST, KMNIST, QMNIST, EMNIST):
    SOURCES.add_class(_source)

# The other sources' modules, imported when a spec names one of their sources (or `dtrain schema` and
# `dtrain layers` list them all): a spec that reads an array file or synthetic data does not import
# torchvision. tests/test_sources.py checks that each module adds exactly these names.
SOURCE_MODULES = {
    "declarative.data.synthetic": ("Synthetic",),
    "declarative.data.tabular": ("CSV",),
    "declarative.data.windows": ("Windows",),
    "declarative.data.text_folder": ("TextFolder",),
    "declarative.data.images": ("ImageFolder",),
    "declarative.data.vision": ("CIFAR10", "CIFAR100", "SVHN", "STL10"),
}
for _module, _names in SOURCE_MODULES.items():
    SOURCES.add_from_module(_module, _names)


def _torchvision_datasets() -> list:
    """torchvision's other data sets, whose names only torchvision knows: looked for when a name is none of the above."""
    importlib.import_module("declarative.data.torchvision_sources")  # adds them to SOURCES itself
    return []


SOURCES.add_later(_torchvision_datasets)
