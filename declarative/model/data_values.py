"""Values a model takes from its data: `${data.num_classes}`, `${data.input_shape}`, `input: auto`.

Only a spec that uses them looks at its data to plan its model, and cheaply (declarative/data/info.py);
the values are found once per spec, and a run takes them from the data it loads.
"""

from __future__ import annotations

from typing import Any

from declarative.errors import did_you_mean
from declarative.model.syntax import reference_name


def _references(value: Any) -> list[str]:
    name = reference_name(value)
    if name is not None:
        return [name]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _references(v)]
    if isinstance(value, list):
        return [n for v in value for n in _references(v)]
    return []


def uses_data(spec) -> bool:
    """Whether the model reads values from the data: `input: auto` or a `${data.*}` reference."""
    model = spec.model
    if model.input == "auto":
        return True
    raw = [model.input, model.blocks, [c.kwargs for c in model.layers]]
    return any(name.startswith("data.") for name in _references(raw))


def data_values(spec) -> dict[str, Any]:
    """{'data.num_classes': ..., 'data.input_shape': [...], 'data.vocab_size': ...} when the model uses them,
    else {}."""
    if not uses_data(spec):
        return {}
    if spec.model.data is None:
        from declarative.data.info import data_info

        spec.model.data = data_info(spec)
    info = spec.model.data
    return {"data.num_classes": info.num_classes, "data.input_shape": list(info.input_shape),
            "data.vocab_size": info.vocab_size}


def resolve_input(spec, values: dict[str, Any]) -> tuple[int, ...]:
    """model.input as a shape; `auto` and references take the data's values. The spec keeps the
    resolved shape, which the data stage then checks its samples against."""
    raw = spec.model.input
    if raw == "auto":
        shape = values["data.input_shape"]
    else:
        items = [raw] if isinstance(raw, str) else raw
        shape = []
        for i, item in enumerate(items):
            name = reference_name(item)
            if name is None:
                shape.append(item)
                continue
            if name not in values:
                hint = did_you_mean(name, list(values) or ["data.input_shape", "data.num_classes"])
                raise spec.error(("model", "input") if isinstance(raw, str) else ("model", "input", i),
                                 f"unknown reference ${{{name}}}" + (f" — {hint}" if hint else ""))
            value = values[name]
            shape.extend(value if isinstance(value, list) else [value])
    spec.model.input = [int(v) for v in shape]
    return tuple(spec.model.input)
