"""Sources of one image per sample (ImageFolder), and stacking such samples into one tensor.

Images are decoded with PIL into uint8 (C, H, W) tensors (RGB, as torchvision's default loader
gives them). Held in memory they become one (N, C, H, W) tensor, so they must share one size:
when every pipeline the images go through (train_transforms then transforms; eval_transforms then
transforms) begins with the same ``Resize`` or ``CenterCrop`` (after an optional ``ToImage``), that
prefix runs on each image as it is read; the same transforms then run again on each batch, where
they change nothing. Augmentation thus sees the images as its own pipeline makes them. Without one, images of mixed sizes are an error that names
two files and their sizes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.transforms.v2 import functional as TF

from declarative.data.sources import SOURCES, Source, SourceError, TensorSplit
from declarative.data.read_resize import SIZE_TRANSFORMS, leading_resize  # noqa: F401  (part of this module's interface)

__all__ = ["ImageFolder", "ImageFiles", "stack_samples", "leading_resize", "SIZE_TRANSFORMS"]

def decode_image(path: str | Path) -> torch.Tensor:
    """An image file as a uint8 (C, H, W) RGB tensor, read the way torchvision's default loader reads it."""
    return TF.pil_to_tensor(datasets.folder.default_loader(str(path)))


class ImageFiles(Dataset):
    """Image files and their class indices as a map-style data set of (uint8 (C, H, W), int64 ()) pairs.

    Args:
        samples: (path, class index) pairs, as ``torchvision.datasets.ImageFolder.samples`` lists them.
        resize: Run on each decoded image, e.g. the spec's leading Resize.
    """

    def __init__(self, samples: list[tuple[str, int]], resize: Callable | None = None):
        self.samples = samples
        self.resize = resize

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path, target = self.samples[index]
        try:
            image = decode_image(path)
        except OSError as exc:  # PIL's UnidentifiedImageError, a truncated file
            raise SourceError(f"{path} is not an image file that can be read ({' '.join(str(exc).split())})",
                              "root") from None
        if self.resize is not None:
            image = self.resize(image)
        return image, torch.tensor(target, dtype=torch.int64)

    def name(self, index: int) -> str:
        return str(self.samples[index][0])


def _size_text(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def stack_samples(dataset: Dataset, name: Callable[[int], str], what: str, threads: int = 1) -> TensorSplit:
    """All samples of a per-sample data set as one TensorSplit; samples of mixed sizes are a SourceError
    that names two of them (`name(i)`) with their sizes.

    Args:
        dataset: Gives (input, target) tensors.
        name: How an error names sample i, e.g. its file.
        what: How an error names the source, e.g. ``ImageFolder``.
        threads: Read this many samples at once; only for data sets whose reads are independent
            (torchvision's FakeData, for one, reseeds the global RNG for every sample).
    """
    if threads > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            pairs = list(pool.map(dataset.__getitem__, range(len(dataset))))
    else:
        pairs = [dataset[i] for i in range(len(dataset))]
    if not pairs:
        raise SourceError(f"{what} has no samples", "root")
    first = pairs[0][0].shape
    for index, (image, _) in enumerate(pairs):
        if image.shape != first:
            raise SourceError(
                f"{what} images differ in size: {name(0)} is {_size_text(first)} but {name(index)} is "
                f"{_size_text(image.shape)} (C×H×W); held in memory they must share one size — start "
                f"data.transforms with a Resize or CenterCrop (and train_transforms and eval_transforms alike, "
                f"when given), e.g. `- Resize: {{size: [{first[-2]}, {first[-1]}]}}`", "root")
    inputs = torch.stack([image for image, _ in pairs])
    targets = torch.stack([target for _, target in pairs])
    return TensorSplit(inputs, targets)


class ImageFolder(Source):
    """A folder of class folders of images (torchvision.datasets.ImageFolder): split train.

    Class indices follow the sorted class folder names, as torchvision numbers them. Images are
    read as RGB uint8 tensors; give separate folders for validation or testing with
    ``val: {source: {ImageFolder: {root: ...}}}``, or carve them with ``fraction``.

    Args:
        root: The folder of class folders, e.g. ``root/cat/001.png``, ``root/dog/002.jpg``.
        allow_empty: Accept class folders without images (their classes still count).
    """

    split_names = ("train",)

    def __init__(self, root: str, allow_empty: bool = False):
        self.root = root
        self.allow_empty = allow_empty
        self.resize: Callable | None = None  # set from the spec's transforms (splits.py) before loading
        self._folder: datasets.ImageFolder | None = None

    def folder(self) -> datasets.ImageFolder:
        """torchvision's ImageFolder over `root`: its classes, and its (path, class index) samples."""
        if self._folder is None:
            root = Path(self.root)
            if not root.is_dir():
                raise SourceError(f"no such folder: {root}" if not root.exists() else
                                  f"{root} is a file; ImageFolder reads a folder of class folders", "root")
            try:
                self._folder = datasets.ImageFolder(str(root), allow_empty=self.allow_empty)
            except (FileNotFoundError, RuntimeError) as exc:  # no class folders, or no images in them
                raise SourceError(f"{root}: {' '.join(str(exc).split())} — ImageFolder reads "
                                  f"root/<class>/<image>, e.g. root/cat/001.png", "root") from None
        return self._folder

    def dataset(self, split: str) -> ImageFiles:
        return ImageFiles(self.folder().samples, self.resize)

    def targets(self, split: str) -> torch.Tensor:
        """The class index of each file, from the folder names: no image is decoded."""
        return torch.tensor([target for _, target in self.folder().samples], dtype=torch.int64)

    def nbytes(self, split: str) -> int | None:
        files = self.dataset(split)
        return len(files) * files[0][0].nbytes if len(files) else 0

    def load(self, split: str) -> TensorSplit:
        files = self.dataset(split)
        # Threads: PIL decodes with the GIL released, and each file is read on its own.
        return stack_samples(files, lambda i: str(Path(files.name(i)).relative_to(self.root)), "ImageFolder",
                             threads=8)


SOURCES.add_class(ImageFolder)
