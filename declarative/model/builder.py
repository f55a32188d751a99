"""Spec layers → an nn.Module, with the shapes that connect them inferred.

Planning runs every layer on the meta device: no memory, no compute, so a 100M-parameter model
is checked in milliseconds. The plan records each node's resolved arguments, output shape and
parameter count; `dtrain summary` prints it, validation reports what does not fit, and
`build_model` makes the real modules from the same arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from declarative.errors import SpecError
from declarative.model.graph import SpecModel
from declarative.model.layers import INFERRED_FROM, LAYERS
from declarative.spec.config import Component, Spec

TRACE_BATCH = 2  # a batch of one would trip layers that need more than one value per channel


@dataclass
class PlannedNode:
    component: Component
    kwargs: dict[str, Any]  # the spec's arguments plus the inferred ones
    inferred: dict[str, Any]
    output_shape: tuple[int, ...]  # without the batch dim
    parameters: int
    trainable: int


@dataclass
class ModelPlan:
    input_shape: tuple[int, ...]
    nodes: list[PlannedNode]

    @property
    def parameters(self) -> int:
        return sum(n.parameters for n in self.nodes)

    @property
    def trainable(self) -> int:
        return sum(n.trainable for n in self.nodes)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.nodes[-1].output_shape if self.nodes else self.input_shape


def shape_text(shape: tuple[int, ...]) -> str:
    """[N, 1, 28, 28]: the batch dim as N."""
    return "[" + ", ".join(["N", *map(str, shape)]) + "]"


def _infer(entry_params: set[str], shape: tuple[int, ...]) -> dict[str, Any]:
    """Values for the shape arguments this layer takes, read off its input shape (batch first)."""
    out = {}
    for name in entry_params & set(INFERRED_FROM):
        rule = INFERRED_FROM[name]
        if rule == "channel" and len(shape) >= 2:
            out[name] = shape[1]
        elif rule == "last" and len(shape) >= 2:
            out[name] = shape[-1]
    return out


def _layer_label(index: int, name: str) -> str:
    return f"layer {index} ({name})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def plan_model(spec: Spec) -> ModelPlan:
    """Trace the layer list on the meta device; the first layer that does not fit is a located SpecError
    (the shapes after it are unknown)."""
    input_shape = tuple(spec.model.input)
    x = torch.empty((TRACE_BATCH, *input_shape), device="meta")
    nodes: list[PlannedNode] = []
    for index, component in enumerate(spec.model.layers):
        entry = LAYERS[component.name]
        label = _layer_label(index, component.name)
        shape = tuple(x.shape)
        inferred = _infer(set(entry.params), shape)
        problems = []
        for name, value in list(inferred.items()):
            if name not in component.kwargs:
                continue
            given = component.kwargs[name]
            if given != value and not (name == "normalized_shape" and isinstance(given, list)):
                problems.append(spec.problem(
                    component.path + (component.name, name),
                    f"{name}={given} disagrees with the input of {label}, shape {shape_text(shape[1:])}, "
                    f"which gives {name}={value} — remove it to have it inferred",
                ))
            del inferred[name]
        if problems:
            raise SpecError(problems)
        kwargs = {**component.kwargs, **inferred}
        try:
            with torch.device("meta"):
                module = entry.build(component.kwargs, **inferred)
        except Exception as exc:  # torch's own argument checks (ValueError, TypeError, ...)
            raise spec.error(component.path, f"{label} cannot be built: {_first_line(exc)}") from None
        module.eval()  # trace without training-mode batch statistics checks
        try:
            y = module(x)
        except Exception as exc:
            raise spec.error(component.path,
                             f"{label} cannot take its input of shape {shape_text(shape[1:])}: {_first_line(exc)}") from None
        if not isinstance(y, torch.Tensor):
            raise spec.error(component.path,
                             f"{label} returns a {type(y).__name__}, not a tensor; a plain layer list needs one "
                             "tensor between layers")
        params = list(module.parameters())
        nodes.append(PlannedNode(
            component=component,
            kwargs=kwargs,
            inferred=inferred,
            output_shape=tuple(y.shape[1:]),
            parameters=sum(p.numel() for p in params),
            trainable=sum(p.numel() for p in params if p.requires_grad),
        ))
        x = y
    return ModelPlan(input_shape, nodes)


def build_model(spec: Spec, plan: ModelPlan | None = None) -> SpecModel:
    """The real model, initialised by each layer's own reset, on the CPU."""
    plan = plan or plan_model(spec)
    return SpecModel([LAYERS[n.component.name].build(n.component.kwargs, **n.inferred) for n in plan.nodes])
