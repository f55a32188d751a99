"""Transform pipelines run on whole batches, with random transforms drawn per sample.

A torchvision v2 transform called on a batch draws one set of parameters for the whole batch
(one crop, one flip). Augmentation needs one per sample, so a `Pipeline` runs each random
transform in one of two ways:

- vectorised, for the common ones (RandomCrop, RandomHorizontalFlip, RandomVerticalFlip,
  RandomResizedCrop, GaussianNoise): the parameters of every sample are drawn at once from the pipeline's
  generator and applied with one op, on the device that holds the batch;
- otherwise sample by sample, calling the v2 transform on each sample and stacking the
  results, under torch's global RNG seeded from the same generator.

Deterministic transforms (ToImage, ToDtype, Normalize, Resize, ...) run once on the batch.
The same generator state gives the same augmentation, so a seeded run repeats exactly.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torchvision.transforms import v2

__all__ = ["DETERMINISTIC", "Pipeline", "is_random", "batch_step"]

# v2 classes whose output depends only on their input: run once per batch (or once per data set).
DETERMINISTIC = frozenset({
    "CenterCrop", "ConvertImageDtype", "Grayscale", "Identity", "LinearTransformation", "Normalize", "Pad",
    "Resize", "RGB", "ToDtype", "ToImage", "ToPureTensor",
})

Step = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def is_random(transform: torch.nn.Module) -> bool:
    """Whether the transform draws random parameters (anything not known to be deterministic)."""
    return type(transform).__name__ not in DETERMINISTIC


def _plain(x: torch.Tensor) -> torch.Tensor:
    return x.as_subclass(torch.Tensor) if type(x) is not torch.Tensor else x


def _per_sample_shape(x: torch.Tensor, n: int) -> list[int]:
    """The shape that broadcasts a per-sample value (n,) over a batch like `x`."""
    return [n] + [1] * (x.dim() - 1)


class _Noise:
    """GaussianNoise: each sample its own noise, drawn at once for the batch."""

    def __init__(self, transform: v2.GaussianNoise):
        self.mean, self.sigma, self.clip = transform.mean, transform.sigma, transform.clip

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = _plain(x)
        noisy = x + self.mean + self.sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return noisy.clamp(0, 1) if self.clip else noisy


class _Deterministic:
    def __init__(self, transform: torch.nn.Module):
        self.transform = transform

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if x.dim() == 2 and type(self.transform) is v2.Normalize:  # a table (N, F): one channel per feature
            return _plain(self.transform(x[:, :, None, None]))[:, :, 0, 0]
        return _plain(self.transform(x))


class _Flip:
    """RandomHorizontalFlip / RandomVerticalFlip: each sample flipped with probability p."""

    def __init__(self, p: float, dim: int):
        self.p, self.dim = p, dim

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = _plain(x)
        flip = torch.rand(len(x), generator=generator, device=x.device) < self.p
        return torch.where(flip.view(_per_sample_shape(x, len(x))), x.flip(self.dim), x)


class _Crop:
    """RandomCrop (with padding): each sample its own offset, cut with one gather.

    Output pixel (i, j) of a crop at (top, left) reads padded pixel (top + i, left + j). Constant
    padding builds the padded batch once; edge and reflect padding map that pixel back into the
    image instead (clamped; mirrored without repeating the edge), with no padded copy.
    """

    MODES = ("constant", "edge", "reflect")

    def __init__(self, transform: v2.RandomCrop):
        self.height, self.width = transform.size
        left, top, right, bottom = transform.padding or [0, 0, 0, 0]
        self.padding = (left, top, right, bottom)
        self.pad_if_needed = transform.pad_if_needed
        self.fill = transform.fill
        self.mode = transform.padding_mode

    @classmethod
    def supports(cls, transform: v2.RandomCrop) -> bool:
        return transform.padding_mode in cls.MODES and isinstance(transform.fill, (int, float))

    def _source_index(self, index: torch.Tensor, size: int) -> torch.Tensor:
        """Image coordinates (outside the image where they fall in the padding) → the pixel they read."""
        if self.mode == "reflect" and size > 1:
            period = 2 * (size - 1)
            index = index.abs() % period
            return torch.where(index >= size, period - index, index)
        return index.clamp(0, size - 1)  # edge

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = _plain(x)
        n, height, width = len(x), x.shape[-2], x.shape[-1]
        left, top, right, bottom = self.padding
        if self.pad_if_needed:  # as v2.RandomCrop: pad both sides by the shortfall
            if height + top + bottom < self.height:
                extra = self.height - (height + top + bottom)
                top, bottom = top + extra, bottom + extra
            if width + left + right < self.width:
                extra = self.width - (width + left + right)
                left, right = left + extra, right + extra
        padded_h, padded_w = height + top + bottom, width + left + right
        if padded_h < self.height or padded_w < self.width:
            raise ValueError(f"RandomCrop of size {[self.height, self.width]} is larger than the padded image "
                             f"{[padded_h, padded_w]}; set pad_if_needed: true or a smaller size")
        device = x.device
        tops = torch.randint(0, padded_h - self.height + 1, (n,), generator=generator, device=device)
        lefts = torch.randint(0, padded_w - self.width + 1, (n,), generator=generator, device=device)
        rows = tops[:, None] + torch.arange(self.height, device=device)  # in padded coordinates
        cols = lefts[:, None] + torch.arange(self.width, device=device)
        flat = x.reshape(n, -1, height, width)  # any leading channel dims as one
        if self.mode == "constant":  # pad once (a copy), then read the crops from it
            flat = torch.nn.functional.pad(flat, (left, right, top, bottom), value=self.fill)
            height, width = padded_h, padded_w
        else:  # map padded coordinates back into the image: no padded copy at all
            rows, cols = self._source_index(rows - top, height), self._source_index(cols - left, width)
        # One gather over the flattened pixels of each sample (much faster than 4-D advanced indexing).
        index = (rows[:, :, None] * width + cols[:, None, :]).view(n, 1, -1)
        flat = flat.reshape(n, flat.shape[1], height * width)
        out = flat.gather(2, index.expand(n, flat.shape[1], index.shape[-1]))
        return out.reshape(*x.shape[:-2], self.height, self.width)


class _ResizedCrop:
    """RandomResizedCrop with bilinear interpolation: each sample its own box, all resized at once.

    The boxes are drawn as v2 draws them (up to 10 tries of a scale and a log-uniform aspect
    ratio, else the central crop), for every sample at once. Each box is cropped and resized by
    two batched matrix products with per-sample weights: the separable antialiased bilinear
    filter of v2's resize (`antialias=True`, its default). Integer images are rounded back to
    their dtype.
    """

    TRIES = 10

    def __init__(self, transform: v2.RandomResizedCrop):
        self.height, self.width = transform.size
        self.scale = transform.scale
        self.ratio = transform.ratio
        self.log_ratio = (math.log(transform.ratio[0]), math.log(transform.ratio[1]))

    @classmethod
    def supports(cls, transform: v2.RandomResizedCrop) -> bool:
        return str(getattr(transform.interpolation, "value", transform.interpolation)) == "bilinear"

    def boxes(self, n: int, height: int, width: int, generator: torch.Generator,
              device: torch.device) -> tuple[torch.Tensor, ...]:
        """(top, left, box height, box width) of each of `n` samples, as v2.RandomResizedCrop draws them."""
        uniform = torch.rand(2, n, self.TRIES, generator=generator, device=device, dtype=torch.float64)
        area = height * width * (self.scale[0] + (self.scale[1] - self.scale[0]) * uniform[0])
        aspect = torch.exp(self.log_ratio[0] + (self.log_ratio[1] - self.log_ratio[0]) * uniform[1])
        w = torch.round(torch.sqrt(area * aspect)).long()
        h = torch.round(torch.sqrt(area / aspect)).long()
        valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = valid.long().argmax(1, keepdim=True)  # the first try that fits
        w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
        # No try fits: the central crop of the nearest allowed aspect ratio.
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            fallback_w, fallback_h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            fallback_w, fallback_h = int(round(height * max(self.ratio))), height
        else:
            fallback_w, fallback_h = width, height
        fits = valid.any(1)
        w = torch.where(fits, w, fallback_w)
        h = torch.where(fits, h, fallback_h)
        offsets = torch.rand(2, n, generator=generator, device=device, dtype=torch.float64)
        top = torch.where(fits, (offsets[0] * (height - h + 1)).long(), (height - h) // 2)
        left = torch.where(fits, (offsets[1] * (width - w + 1)).long(), (width - w) // 2)
        return top, left, h, w

    @staticmethod
    def weights(start: torch.Tensor, length: torch.Tensor, size: int, out_size: int) -> torch.Tensor:
        """(N, out_size, size) bilinear resampling weights of each sample's [start, start + length) span.

        The antialiased triangle filter of torch's (and PIL's) bilinear resize: wider than one
        pixel when the span shrinks, plain linear interpolation when it grows; clamped to the span.
        """
        scale = (length.double() / out_size)[:, None, None]  # (N, 1, 1)
        support = scale.clamp(min=1.0)
        centre = scale * (torch.arange(out_size, device=length.device, dtype=torch.float64)[None, :, None] + 0.5)
        first = torch.floor(centre - support + 0.5).clamp(min=0)
        last = torch.minimum(torch.floor(centre + support + 0.5), length.double()[:, None, None])
        k = torch.arange(size, device=length.device, dtype=torch.float64)[None, None, :] - start[:, None, None]
        weights = (1 - ((k - centre + 0.5) / support).abs()).clamp(min=0)
        weights = weights * ((k >= first) & (k < last))
        return weights / weights.sum(-1, keepdim=True)

    def resample(self, x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: torch.Tensor,
                 w: torch.Tensor) -> torch.Tensor:
        """Crop each sample to its box and resize it to the output size: two batched matmuls."""
        n, height, width = len(x), x.shape[-2], x.shape[-1]
        flat = x.reshape(n, -1, height, width)
        dtype = flat.dtype if flat.is_floating_point() else torch.float32
        rows = self.weights(top, h, height, self.height).to(dtype)  # (N, out_h, H)
        cols = self.weights(left, w, width, self.width).to(dtype)  # (N, out_w, W)
        out = rows[:, None] @ flat.to(dtype) @ cols[:, None].transpose(-1, -2)
        if not flat.is_floating_point():
            info = torch.iinfo(flat.dtype)
            out = out.round_().clamp_(info.min, info.max).to(flat.dtype)
        return out.reshape(*x.shape[:-2], self.height, self.width)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = _plain(x)
        return self.resample(x, *self.boxes(len(x), x.shape[-2], x.shape[-1], generator, x.device))


class _PerSample:
    """Any other random transform: called on each sample, under the global RNG seeded from the generator."""

    def __init__(self, transform: torch.nn.Module):
        self.transform = transform

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # One draw per batch seeds the samples' draws (a host read, on this slow path only).
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return torch.stack([_plain(self.transform(sample)) for sample in x])


def batch_step(transform: torch.nn.Module) -> Step:
    """How a pipeline runs `transform` on a batch: vectorised, per sample, or once for the batch."""
    if not is_random(transform):
        return _Deterministic(transform)
    if type(transform) is v2.RandomHorizontalFlip:
        return _Flip(transform.p, -1)
    if type(transform) is v2.RandomVerticalFlip:
        return _Flip(transform.p, -2)
    if type(transform) is v2.RandomCrop and _Crop.supports(transform):
        return _Crop(transform)
    if type(transform) is v2.RandomResizedCrop and _ResizedCrop.supports(transform):
        return _ResizedCrop(transform)
    if type(transform) is v2.GaussianNoise:
        return _Noise(transform)
    return _PerSample(transform)


class Pipeline:
    """Transforms applied in order to a batch; random ones per sample, drawn from `generator`.

    Args:
        transforms: Built v2 transforms.

    Shape:
        ``x`` (N, *sample) → (N, *out); the output is a plain tensor (no tv_tensor subclass).
    """

    def __init__(self, transforms: list[torch.nn.Module]):
        self.transforms = list(transforms)
        self.steps = [batch_step(t) for t in self.transforms]

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for step in self.steps:
            x = step(x, generator)
        return _plain(x)

    def __repr__(self) -> str:
        return f"Pipeline({self.transforms})"
