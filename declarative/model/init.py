"""Initializers: torch.nn.init's functions by name, per layer type or per layer item, run seeded.

    model:
      init:                                     # every layer of a type (torchvision's inner layers too)
        Linear: {weight: xavier_uniform_, bias: zeros_}
        Conv2d: {weight: {kaiming_normal_: {mode: fan_out, nonlinearity: relu}}}
      layers:
        - Linear: {out_features: 10}
          init: {weight: {normal_: {std: 0.01}}}  # one item: its parameters of that name

Per-type initializers run first, an item's own after them, so the item's win. The model is built under
the run's seed, so the same seed gives the same initial weights.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn as nn

from declarative.errors import did_you_mean
from declarative.model.meta import spec_initializer
from declarative.registry import Entry, Registry, first_line, signature_params

__all__ = ["INITIALIZERS", "apply_type_init", "apply_item_init"]

INITIALIZERS = Registry("initializer", list_command="dtrain layers --kind initializer")


def _initializer(fn):
    def make(**kwargs: Any):
        return functools.partial(fn, **kwargs)
    return make


def _register() -> None:
    for name in sorted(dir(nn.init)):
        fn = getattr(nn.init, name)
        if not name.endswith("_") or name.startswith("_") or not callable(fn):
            continue
        params = signature_params(fn, skip={"tensor", "generator"})
        if params is not None:
            INITIALIZERS.add(Entry(name, _initializer(fn), params, first_line(fn.__doc__)))


_register()


def _build(item: Any, path: tuple, spec: Any):
    from declarative.spec.config import Component

    return INITIALIZERS.build_component(Component.parse(item, path), spec)


def _run(init, tensor: torch.Tensor, path: tuple, spec: Any, what: str) -> None:
    try:
        with torch.no_grad(), spec_initializer():
            init(tensor)
    except (ValueError, RuntimeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise spec.error(path, f"cannot initialise {what} of shape {list(tensor.shape)}: {reason}") from None


_GRAPH = {"SpecModel", "LayerList", "Residual", "Parallel"}  # dtrain's own containers, not layers a spec names


def apply_type_init(model: nn.Module, table: dict, spec: Any) -> None:
    """`model.init`: {LayerType: {parameter: initializer}} over every layer of that type."""
    for kind, parameters in table.items():
        path = ("model", "init", kind)
        modules = [(n, m) for n, m in model.named_modules() if type(m).__name__ == kind]
        if not modules:
            types = sorted({type(m).__name__ for m in model.modules()} - _GRAPH)
            hint = did_you_mean(kind, types)
            raise spec.error(path, f"no layer of type '{kind}' is in the model" + (f" — {hint}" if hint else "")
                             + f" (its layer types: {', '.join(types)})", key=True)
        for param, item in (parameters or {}).items():
            init = _build(item, path + (param,), spec)
            tensors = [(n, getattr(m, param, None)) for n, m in modules]
            tensors = [(n, t) for n, t in tensors if isinstance(t, torch.Tensor)]
            if not tensors:
                names = sorted({n for _, m in modules for n, _ in m.named_parameters(recurse=False)})
                hint = did_you_mean(param, names)
                raise spec.error(path + (param,), f"no {kind} of the model has a parameter '{param}'"
                                 + (f" — {hint}" if hint else "")
                                 + (f" (it has: {', '.join(names)})" if names else ""), key=True)
            for name, tensor in tensors:
                _run(init, tensor, path + (param,), spec, f"{name}.{param}")


def apply_item_init(module: nn.Module, table: dict, path: tuple, spec: Any) -> None:
    """An item's `init`: {parameter: initializer}, on every parameter of that name inside the item."""
    for param, item in table.items():
        init = _build(item, path + (param,), spec)
        tensors = [(n, p) for n, p in module.named_parameters() if n.rsplit(".", 1)[-1] == param]
        if not tensors:
            names = sorted({n.rsplit(".", 1)[-1] for n, _ in module.named_parameters()})
            raise spec.error(path + (param,), f"this layer has no parameter '{param}'"
                             + (f" (it has: {', '.join(names)})" if names else " (it has none)"), key=True)
        for name, tensor in tensors:
            _run(init, tensor, path + (param,), spec, name)
