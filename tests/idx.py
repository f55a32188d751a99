"""Write MNIST-style IDX files: the real format torchvision parses, for tests that need no download.

IDX (http://yann.lecun.com/exdb/mnist/): a big-endian magic number 0x0000TTDD (TT the element
type, 0x08 uint8 or 0x0C int32; DD the number of dims), each dim as a big-endian uint32, then
the elements, big-endian.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_TYPE_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}

# torchvision's file names, by split.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """One array as an IDX file."""
    array = np.asarray(array)
    code = _TYPE_CODES[array.dtype]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", (code << 8) | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(array.dtype.newbyteorder(">")).tobytes())
    return path


def digit_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """28×28 uint8 images that a small model can tell apart: a bright 8×8 square whose place
    on a 4×3 grid is the label, over faint noise."""
    images = rng.integers(0, 40, size=(len(labels), 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 4)
        images[i, 2 + 9 * row: 10 + 9 * row, 1 + 7 * col: 7 + 7 * col] = 255
    return images


def mnist_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` images (uint8, n×28×28) and labels (uint8 0..9), the same for the same seed."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return digit_images(labels, rng), labels


def write_mnist(root: str | Path, n_train: int = 300, n_test: int = 100, seed: int = 0,
                folder: str = "MNIST") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MNIST's four IDX files in `root/<folder>/raw/`, as torchvision.datasets.MNIST reads them.

    `folder` is the torchvision class name (MNIST, FashionMNIST, KMNIST: the same file names).
    Returns the written (images, labels) arrays by split, "train" and "test".
    """
    raw = Path(root) / folder / "raw"
    written = {}
    for offset, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        images, labels = mnist_arrays(n, seed * 2 + offset)
        image_file, label_file = MNIST_FILES[split]
        write_idx(raw / image_file, images)
        write_idx(raw / label_file, labels)
        written[split] = (images, labels)
    return written
