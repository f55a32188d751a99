"""Optimizer parameter groups, chosen by what a spec means: module paths, named items, layer types, biases.

    optimizer:
      SGD: {lr: 0.5, momentum: 0.9, weight_decay: 2.0e-5}
      param_groups:
        - params: {type: [BatchNorm2d, LayerNorm], bias: true}   # no weight decay on norms and biases
          weight_decay: 0
        - params: {names: ['layers.0.*'], layers: [stem]}
          lr: 0.05

A selector takes the parameters any of its keys match: `names` are globs over parameter or module names
(`layers.0.*`, `*.bias`, `layers.3`), `layers` are items named with `name:`, `type` are layer class names
(the parameters those layers hold themselves), `bias: true` is every parameter called `bias`. Each group
carries its own torch optimizer arguments; the parameters no group takes form the first group, with the
optimizer's own arguments. Frozen parameters (`trainable: false`) join no group.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import torch.nn as nn

from declarative.errors import did_you_mean

__all__ = ["param_groups", "named_items"]

SELECTOR_KEYS = ("names", "layers", "type", "bias")


def named_items(model: nn.Module) -> dict[str, str]:
    """The items the spec named (`name: enc1`) → their module paths; a name used in two layer lists
    (names are local to a list) maps to the first."""
    from declarative.model.graph import LayerList

    found: dict[str, str] = {}
    for path, module in model.named_modules():
        if isinstance(module, LayerList) and module.wiring is not None:
            for index, wiring in enumerate(module.wiring):
                if wiring.name is not None:
                    found.setdefault(wiring.name, f"{path}.{index}" if path else str(index))
    return found


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _select(model: nn.Module, selector: dict, path: tuple, spec: Any) -> list[str]:
    """The names of the parameters one selector takes, in the model's order."""
    names = [name for name, _ in model.named_parameters()]
    chosen: set[str] = set()
    for glob in _as_list(selector.get("names", [])):
        matched = [n for n in names if fnmatch.fnmatchcase(n, glob) or fnmatch.fnmatchcase(n, glob + ".*")]
        if not matched:
            modules = [m for m, _ in model.named_modules() if m]
            hint = did_you_mean(glob, names + modules)
            raise spec.error(path + ("names",), f"'{glob}' matches no parameter of the model"
                             + (f" — {hint}" if hint else " (names look like layers.0.weight; `dtrain summary` "
                                                          "shows the layers)"))
        chosen.update(matched)
    items = named_items(model)
    for item in _as_list(selector.get("layers", [])):
        if item not in items:
            hint = did_you_mean(str(item), items)
            raise spec.error(path + ("layers",), f"no layer is named '{item}'" + (f" — {hint}" if hint else "")
                             + (f" (named: {', '.join(items)})" if items else "; name one with `name:` beside it"))
        prefix = items[item] + "."
        chosen.update(n for n in names if n.startswith(prefix))
    for kind in _as_list(selector.get("type", [])):
        matched = [f"{m}.{p}" if m else p for m, module in model.named_modules() if type(module).__name__ == kind
                   for p, _ in module.named_parameters(recurse=False)]
        if not matched:
            types = sorted({type(m).__name__ for m in model.modules() if next(m.parameters(recurse=False), None) is not None})
            hint = did_you_mean(str(kind), types)
            raise spec.error(path + ("type",), f"no layer of type '{kind}' with parameters is in the model"
                             + (f" — {hint}" if hint else "") + f" (its layers with parameters: {', '.join(types)})")
        chosen.update(matched)
    if selector.get("bias"):
        matched = [n for n in names if n.rsplit(".", 1)[-1] == "bias"]
        if not matched:
            raise spec.error(path + ("bias",), "bias: true matches nothing: no layer of the model has a bias")
        chosen.update(matched)
    return [n for n in names if n in chosen]


def _fits(schema: dict, value: Any) -> bool:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema).is_valid(value)


def param_groups(model: nn.Module, optimizer: Any, spec: Any) -> list[dict[str, Any]] | list:
    """Torch param groups for the spec's optimizer component (its `param_groups` beside its name).

    Without groups: the model's trainable parameters. A parameter two groups select, a selector that
    matches nothing, or an argument the optimizer does not take is a located SpecError.
    """
    from declarative.training.components import OPTIMIZERS

    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = optimizer.wiring.get("param_groups") or []
    if not groups:
        return [p for _, p in trainable]
    entry = OPTIMIZERS[optimizer.name] if optimizer.name in OPTIMIZERS else None
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    owner: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    for index, group in enumerate(groups):
        path = optimizer.path + ("param_groups", index)
        options = {k: v for k, v in group.items() if k != "params"}
        for key in options:
            if entry is not None and key not in entry.params:
                hint = did_you_mean(key, entry.params)
                raise spec.error(path + (key,), f"{optimizer.name} has no argument '{key}'"
                                 + (f" — {hint}" if hint else "") + f" (it takes: {', '.join(entry.params)})",
                                 key=True)
            if entry is not None and not _fits(entry.params[key].schema, options[key]):
                from declarative.spec.messages import describe

                raise spec.error(path + (key,), f"{key} must be {describe(entry.params[key].schema)}, "
                                                f"got {options[key]!r}")
        selected = [n for n in _select(model, group["params"], path + ("params",), spec) if n not in frozen]
        if not selected:
            raise spec.error(path + ("params",), "this group selects only frozen parameters (trainable: false); "
                                                 "they join the optimizer when they are unfrozen")
        for name in selected:
            if name in owner:
                raise spec.error(path + ("params",), f"{name} is in group {owner[name]} already: a parameter "
                                                     "belongs to one group — narrow one of the selectors")
            owner[name] = index
        if entry is not None:
            options = {k: (entry.params[k].convert(v) if entry.params[k].convert and v is not None else v)
                       for k, v in options.items()}
        out.append((selected, options))
    parameters = dict(trainable)
    rest = [p for n, p in trainable if n not in owner]
    listed = [{"params": [parameters[n] for n in names], **options} for names, options in out]
    return ([{"params": rest}] if rest else []) + listed
