"""A trained model from its checkpoint alone: the model and its evaluation pipeline, without any data.

`dtrain predict` and `dtrain export` start here. The checkpoint's resolved spec plans the model with
the data values it recorded (`${data.num_classes}`, `input: auto`), its weights load, and the
evaluation transforms are built from the recorded spec, whose `Normalize: auto` already holds the
statistics computed at training. No source is opened: the inputs are whatever the user gives.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

from declarative.errors import Location, Problem, SpecError
from declarative.spec.config import Spec

__all__ = ["Trained", "load_trained"]


@dataclass
class Trained:
    """A checkpoint's model in eval mode on the CPU, the transforms its evaluation batches got, and
    what it knows of its data (declarative/inference/vocabulary.py)."""

    spec: Spec
    model: torch.nn.Module
    transforms: list[torch.nn.Module]  # data.transforms, built: what val/test batches got
    task: str | None
    origin: str  # the checkpoint file
    vocabulary: dict[str, Any] = field(default_factory=dict)
    layers: list[tuple[Any, torch.nn.Module]] = field(default_factory=list)  # (spec component, module) per item

    @property
    def class_names(self) -> list[str] | None:
        return self.vocabulary.get("class_names")

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of raw inputs as the model's evaluation batches were: the eval transforms, in order."""
        from declarative.data.augment import Pipeline

        pipeline = Pipeline(self.transforms)
        return pipeline(x, torch.Generator(x.device)).as_subclass(torch.Tensor) if pipeline else x


def load_trained(path: str | Path, overrides: Iterable[str] = ()) -> Trained:
    """The model and evaluation pipeline of a checkpoint written by `dtrain run`; a located error when the
    file is no checkpoint or its weights do not fit the model its spec builds."""
    from declarative.assembly.tasks import resolve_task
    from declarative.data.info import DataInfo
    from declarative.data.transforms import build_transforms
    from declarative.model.builder import build_model, plan_model
    from declarative.spec.validate import spec_from_data
    from declarative.training.checkpoint import load_checkpoint

    origin = str(path)
    contents = load_checkpoint(path)
    spec = spec_from_data(contents["spec"], origin=origin, semantic=False, overrides=list(overrides))
    values = contents.get("data_values", {})
    if values or spec.model.input == "auto":
        shape = values.get("data.input_shape", spec.model.input)
        vocab_size = values.get("data.vocab_size")
        info = DataInfo(tuple(shape), values.get("data.num_classes"), vocab_size,
                        torch.int64 if vocab_size is not None else torch.float32)  # text: token ids
        spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, data=info))
    plan = plan_model(spec)
    model = build_model(spec, plan)
    try:
        model.load_state_dict(contents["state_dict"])
    except (RuntimeError, TypeError, ValueError, AttributeError) as exc:
        raise SpecError(Problem(Location(origin), "its weights do not fit the model its spec builds: "
                                + str(exc).strip().splitlines()[0])) from None
    model.eval()
    task = resolve_task(spec, plan.output_shape).task
    transforms = build_transforms(spec, spec.data.transforms)
    layers = [(node.component, model.layers[i]) for i, node in enumerate(plan.nodes)]
    return Trained(spec, model, transforms, task, origin, dict(contents.get("vocabulary", {})), layers)
