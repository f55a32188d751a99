"""JSON Schema for Python annotations and signatures.

The registries describe torch's layers, losses, optimizers, schedulers and transforms from
their own signatures, so the schema follows the installed torch instead of a hand-kept list.
"""

from __future__ import annotations

import collections.abc
import inspect
import numbers
import types
import typing
from typing import Any

UNSUPPORTED = None  # an annotation no YAML value can satisfy (a Module, a callable, ...)

_DTYPES = ["float16", "bfloat16", "float32", "float64", "uint8", "int8", "int16", "int32", "int64", "bool"]


def is_tensor(tp: Any) -> bool:
    return getattr(tp, "__name__", None) == "Tensor" and getattr(tp, "__module__", "").startswith("torch")


def is_dtype(tp: Any) -> bool:
    return getattr(tp, "__name__", None) == "dtype" and getattr(tp, "__module__", "") == "torch"


def annotation_schema(tp: Any) -> dict | None:
    """A JSON Schema for values of type `tp`, or None when YAML cannot express it."""
    if tp is inspect.Parameter.empty or tp is Any:
        return {}
    if tp is type(None):
        return {"type": "null"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if tp in (numbers.Number, numbers.Real):
        return {"type": "number"}
    if tp in (collections.abc.Sequence, list, tuple):
        return {"type": "array"}
    if is_dtype(tp):
        return {"enum": list(_DTYPES)}
    if is_tensor(tp):  # given as a (nested) list of numbers, e.g. class weights
        return {"type": "array", "items": {"type": ["number", "array"]}}
    if getattr(tp, "__name__", None) == "Size":
        return {"type": "array", "items": {"type": "integer"}}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        # `float | Tensor` is a float in a spec; `Tensor | None` stays a (list-given) tensor or null.
        numeric = any(a in (int, float) for a in args)
        options = [a for a in args if not (numeric and is_tensor(a))]
        schemas = [annotation_schema(a) for a in options]
        schemas = [s for s in schemas if s is not None]
        if not schemas:
            return None
        if any(s == {} for s in schemas):
            return {}
        flat: list[dict] = []
        for s in schemas:
            for part in s.get("anyOf", [s]):
                if part not in flat:
                    flat.append(part)
        return flat[0] if len(flat) == 1 else {"anyOf": flat}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            items = annotation_schema(args[0])
            return None if items is None else {"type": "array", "items": items}
        if not args:
            return {"type": "array"}
        items = [annotation_schema(a) for a in args]
        if any(i is None for i in items):
            return None
        return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
    if origin in (list, collections.abc.Sequence, collections.abc.Iterable, collections.abc.MutableSequence):
        items = annotation_schema(args[0]) if args else {}
        return None if items is None else {"type": "array", "items": items}
    if origin in (dict, collections.abc.Mapping):
        return None  # mappings in torch signatures are per-type tables (ToDtype), not spec material
    return None


def default_schema(value: Any) -> dict:
    """Schema guessed from a default value, for parameters that carry no annotation."""
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    return {}


def json_default(value: Any) -> tuple[bool, Any]:
    """(True, value) when a Python default can be shown in the schema as JSON."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and value != value:  # NaN
            return False, None
        return True, value
    if isinstance(value, (tuple, list)) and all(isinstance(v, (bool, int, float, str)) for v in value):
        return True, list(value)
    return False, None


def allows(schema: dict, json_type: str) -> bool:
    """Whether a schema admits values of a JSON type (used to place numeric constraints)."""
    if not schema:
        return True
    if "anyOf" in schema:
        return any(allows(s, json_type) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind is None:
        return False
    kinds = kind if isinstance(kind, list) else [kind]
    return json_type in kinds or (json_type == "integer" and "number" in kinds)
