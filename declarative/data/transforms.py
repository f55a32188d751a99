"""Transforms: torchvision.transforms.v2 classes by name, applied to whole batches of tensors.

`data.transforms` is the pipeline every split gets; `data.train_transforms` (augmentation) runs
before it on training batches only. Both run on whole batches, (N, C, H, W) at a time, with
random transforms drawn per sample (declarative/data/augment.py). `Normalize: {mean: auto,
std: auto}` is filled in from the training split (declarative/data/stats.py).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torchvision.transforms import AutoAugmentPolicy, InterpolationMode, v2

from declarative.registry import Entry, Param, Registry, first_line, signature_params
from declarative.spec.jsontypes import annotation_schema

__all__ = ["TRANSFORMS", "AUTO", "build_transforms", "probe_transforms"]

TRANSFORMS = Registry("transform", list_command="dtrain layers --kind transform")

# v2 classes a spec cannot use on batches of image tensors, and why.
_EXCLUDED = {
    "Transform": "the base class",
    "Compose": "dtrain composes data.transforms itself",
    "RandomApply": "takes other transforms (Python objects)",
    "RandomChoice": "takes other transforms (Python objects); a RandomChoice of MixUp and CutMix goes under "
                    "data.batch_transforms",
    "RandomOrder": "takes other transforms (Python objects)",
    "Lambda": "takes a Python callable",
    "PILToTensor": "PIL images only",
    "ToPILImage": "PIL images only",
    "ToTensor": "PIL images and numpy arrays only (deprecated)",
    "FiveCrop": "returns a tuple of crops, not a batch",
    "TenCrop": "returns a tuple of crops, not a batch",
    "CutMix": "it mixes the targets too: list it under data.batch_transforms",
    "MixUp": "it mixes the targets too: list it under data.batch_transforms",
    "UniformTemporalSubsample": "videos only",
    "RandomIoUCrop": "needs bounding boxes",
    "ClampBoundingBoxes": "bounding boxes only",
    "ConvertBoundingBoxFormat": "bounding boxes only",
    "SanitizeBoundingBoxes": "bounding boxes only",
    "ClampKeyPoints": "key points only",
    "SanitizeKeyPoints": "key points only",
    "SetClampingMode": "bounding boxes only",
}

# `inplace` would write into the stored data set through a batch that is a view of it.
_SKIPPED = {"inplace"}

_PROBABILITY = {"minimum": 0, "maximum": 1}
_CONSTRAINTS = {"p": _PROBABILITY, "num_output_channels": {"enum": [1, 3]}}

# Annotations the generic reader gets wrong or cannot express, by argument name:
# (schema, YAML value → what the class takes).
_DTYPE_SCHEMA = annotation_schema(torch.dtype)  # {"enum": ["float32", ...]}
_OVERRIDES: dict[str, tuple[dict, Callable[[Any], Any]]] = {
    # ToDtype's `torch.dtype | dict[type, dtype]`: the dict form maps tv_tensor types, not spec material.
    "dtype": (_DTYPE_SCHEMA, lambda v: getattr(torch, v)),
    # `str | InterpolationMode | int`: only the modes that tensors support.
    "interpolation": ({"enum": [m.value for m in (InterpolationMode.NEAREST, InterpolationMode.NEAREST_EXACT,
                                                  InterpolationMode.BILINEAR, InterpolationMode.BICUBIC)]},
                      InterpolationMode),
    "policy": ({"enum": [p.value for p in AutoAugmentPolicy]}, AutoAugmentPolicy),
    # `numbers.Number | Sequence`: one angle (±degrees) or a [min, max] range.
    "degrees": ({"anyOf": [{"type": "number", "minimum": 0},
                           {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}]},
                lambda v: list(v) if isinstance(v, list) else v),
}


def _override_default(name: str, default: Any) -> Any:
    """The JSON form of an overridden argument's Python default (torch.float32 → 'float32')."""
    if isinstance(default, torch.dtype):
        return str(default).removeprefix("torch.")
    if isinstance(default, (InterpolationMode, AutoAugmentPolicy)):
        return default.value
    return default


# Normalize's mean and std may be `auto`: computed per channel from the training split.
AUTO = "auto"
_AUTO_ARGUMENTS = {"Normalize": ("mean", "std")}


def _params(cls: type) -> dict[str, Param] | None:
    """The spec arguments of a v2 class: its signature, with `_OVERRIDES` put in their place."""
    params = signature_params(cls.__init__, skip=set(_OVERRIDES) | _SKIPPED, constraints=_CONSTRAINTS)
    if params is None:
        return None
    for name in _AUTO_ARGUMENTS.get(cls.__name__, ()):
        param = params[name]
        auto = {"const": AUTO, "description": "computed per channel from the training split"}
        params[name] = Param(name, {"anyOf": [param.schema, auto]}, param.required, param.convert)
    ordered: dict[str, Param] = {}
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name in params:
            ordered[p.name] = params[p.name]
        elif p.name in _OVERRIDES:
            schema, convert = _OVERRIDES[p.name]
            required = p.default is inspect.Parameter.empty
            if not required:
                schema = {**schema, "default": _override_default(p.name, p.default)}
            ordered[p.name] = Param(p.name, schema, required, convert)
    return ordered


def _register_all() -> None:
    for name in sorted(dir(v2)):
        cls = getattr(v2, name)
        if name in _EXCLUDED:  # a spec that names one is told why
            TRANSFORMS.exclude(name, _EXCLUDED[name])
            continue
        if not (isinstance(cls, type) and issubclass(cls, v2.Transform)):
            continue
        try:
            params = _params(cls)
        except (TypeError, ValueError):  # a signature inspect cannot read: not offered
            continue
        if params is not None:
            TRANSFORMS.add(Entry(name, cls, params, first_line(cls.__doc__)))


_register_all()


def build_transforms(spec, components: list) -> list[torch.nn.Module]:
    """Transforms of the spec (e.g. `spec.data.transforms`), built; a bad name or argument is a located error."""
    return [TRANSFORMS.build_component(component, spec) for component in components]


def probe_transforms(spec, components: list, transforms: list[torch.nn.Module], inputs: torch.Tensor) -> torch.Tensor:
    """Run the transforms one by one on a small batch, as training runs them (random ones per sample),
    so a failure names the transform at fault."""
    from declarative.data.augment import batch_step

    generator = torch.Generator(inputs.device).manual_seed(0)
    batch = inputs
    for component, transform in zip(components, transforms):
        shape, dtype = list(batch.shape), str(batch.dtype).removeprefix("torch.")
        try:
            batch = batch_step(transform)(batch, generator)
        except Exception as exc:  # anything a transform raises on the user's data is a data problem
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise spec.error(component.path, f"{component.name} fails on a batch of shape {shape} "
                                             f"({dtype}): {reason}") from None
    return batch.as_subclass(torch.Tensor)
