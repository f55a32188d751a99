"""Synthetic: made-up data whose targets a model can learn, for smoke runs without any files.

Inputs are standard normal float32 samples of the given shape. Targets are a fixed function of
the inputs, drawn from `seed`, so a smoke run's loss falls:

- multiclass: the argmax of a fixed random linear map of the sample (int64 class indices);
- binary: whether a fixed random linear map is positive (int64 0/1, shape (N, 1), beside a last
  ``Linear`` with one output; integer 0/1 targets let a spec without ``task:`` be read as binary,
  and the run hands ``BCEWithLogitsLoss`` them as floats);
- multilabel: which of ``num_classes`` fixed random linear maps are positive (int64 0/1, (N, num_classes));
- regression: ``num_classes`` fixed random linear maps of the sample, through tanh (float32 (N, num_classes));
- segmentation: for samples (C, H, W), each pixel's class from a fixed channel mix of the blurred
  sample, cut at its quantiles into ``num_classes`` bands of about equal size (int64 masks (N, H, W)).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from declarative.data.sources import SOURCES, Described, Source, SourceError, TensorSplit

__all__ = ["Synthetic"]

Task = Literal["multiclass", "binary", "multilabel", "regression", "segmentation"]


class Synthetic(Source):
    """Random samples with targets a fixed function of them, for smoke runs: splits train and test.

    Args:
        shape: One sample's shape, e.g. ``[3, 32, 32]`` or ``[20]``; ``[C, H, W]`` for segmentation.
        size: Samples in the train split.
        test_size: Samples in the test split. Default: a fifth of ``size``.
        task: What the targets are: multiclass, binary, multilabel, regression or segmentation.
        num_classes: Classes (multiclass, multilabel, segmentation) or values per target (regression).
        seed: Seed of the samples and of the function that labels them.
    """

    split_names = ("train", "test")

    def __init__(self, shape: list[int], size: int = 1000, test_size: int | None = None,
                 task: Task = "multiclass", num_classes: int = 10, seed: int = 0):
        if not shape or any(d < 1 for d in shape):
            raise SourceError(f"shape {shape} needs one or more sizes, each at least 1", "shape")
        if task == "segmentation" and len(shape) != 3:
            raise SourceError(f"segmentation samples have shape [C, H, W], not {shape}", "shape")
        if size < 1 or (test_size is not None and test_size < 1):
            raise SourceError("a split needs at least one sample", "size" if size < 1 else "test_size")
        if num_classes < (1 if task in ("regression", "multilabel") else 2):
            raise SourceError(f"{task} needs num_classes of at least 2, not {num_classes}", "num_classes")
        self.shape = tuple(shape)
        self.size = size
        self.test_size = test_size if test_size is not None else max(1, size // 5)
        self.task = task
        self.num_classes = num_classes
        self.seed = seed
        self._splits: dict[str, TensorSplit] | None = None

    def load(self, split: str) -> TensorSplit:
        if self._splits is None:
            generator = torch.Generator().manual_seed(self.seed)
            inputs = torch.randn((self.size + self.test_size, *self.shape), generator=generator)
            targets = self._targets(inputs, generator)
            self._splits = {"train": TensorSplit(inputs[:self.size], targets[:self.size]),
                            "test": TensorSplit(inputs[self.size:], targets[self.size:])}
        return self._splits[split]

    def describe(self, split: str) -> Described:
        """Its own arguments: float32 samples of `shape`; the classes (or labels, for multilabel) it draws."""
        classes = self.num_classes if self.task in ("multiclass", "segmentation", "multilabel") else None
        return Described(self.shape, torch.float32, classes, exact=True)

    def _targets(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, k = len(inputs), self.num_classes
        if self.task == "segmentation":
            return self._masks(inputs, generator)
        flat = inputs.reshape(n, -1)
        outputs = 1 if self.task == "binary" else k
        weight = torch.randn((flat.shape[1], outputs), generator=generator) / math.sqrt(flat.shape[1])
        scores = flat @ weight  # about standard normal per column
        if self.task == "multiclass":
            return scores.argmax(dim=1)
        if self.task in ("binary", "multilabel"):
            return (scores > 0).long()
        return torch.tanh(scores)

    def _masks(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        channels = inputs.shape[1]
        mix = torch.randn((1, channels, 1, 1), generator=generator)
        field = (inputs * mix).sum(dim=1, keepdim=True)
        # Smooth with a box blur so classes come in blobs, not salt-and-pepper pixels.
        size = max(1, min(inputs.shape[-2:]) // 4) | 1
        field = F.avg_pool2d(field, size, stride=1, padding=size // 2, count_include_pad=False)[:, 0]
        cuts = torch.quantile(field.flatten()[:1_000_000], torch.linspace(0, 1, self.num_classes + 1)[1:-1])
        return torch.bucketize(field, cuts)


SOURCES.add_class(Synthetic, constraints={"shape": {"minimum": 1}, "size": {"minimum": 1}, "test_size": {"minimum": 1},
                                           "num_classes": {"minimum": 1}})
