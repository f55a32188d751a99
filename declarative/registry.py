"""One Registry type for every named thing a spec can use.

Each entry carries its factory, the JSON Schema of its keyword arguments and a one-line doc,
so `dtrain schema`, `dtrain layers`, validation and building all read the same table.
A spec names an entry either as a bare string (`ReLU`) or as a one-key mapping of the name
to its keyword arguments (`{Linear: {out_features: 10}}`).
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from declarative.errors import did_you_mean
from declarative.spec.jsontypes import allows, annotation_schema, default_schema, is_dtype, is_tensor, json_default


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict
    required: bool
    convert: Callable[[Any], Any] | None = None  # YAML value → what the factory takes


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    params: dict[str, Param]
    doc: str = ""
    inferred: frozenset[str] = frozenset()  # filled in by dtrain when the spec leaves them out
    left_out: dict[str, str] = field(default_factory=dict)  # arguments of the original left out on purpose → why

    @property
    def required(self) -> list[str]:
        return [p.name for p in self.params.values() if p.required and p.name not in self.inferred]

    def kwargs_schema(self, references: bool = False) -> dict:
        properties = {name: p.schema for name, p in self.params.items()}
        if references:
            properties = {name: accept_reference(s) for name, s in properties.items()}
        schema: dict[str, Any] = {
            "x-entry": self.name,
            "type": "object" if self.required else ["object", "null"],
            "properties": properties,
            "additionalProperties": False,
        }
        if self.doc:
            schema["description"] = self.doc
        if self.left_out:
            schema["x-left-out"] = dict(self.left_out)
        if self.required:
            schema["required"] = self.required
        return schema

    def build(self, kwargs: dict | None = None, **extra: Any) -> Any:
        """Call the factory with converted spec kwargs plus dtrain's own (inferred) ones."""
        converted = {}
        for key, value in (kwargs or {}).items():
            param = self.params[key]
            converted[key] = param.convert(value) if param.convert and value is not None else value
        converted.update(extra)
        return self.factory(**converted)


REFERENCE_PATTERN = r"^\$\{\s*[A-Za-z_][A-Za-z0-9_.]*\s*\}$"
REFERENCE = {"type": "string", "pattern": REFERENCE_PATTERN, "x-reference": True,
             "description": "A ${name} reference: a block parameter, or a data value such as ${data.num_classes}."}
REFERENCE_REF = {"$ref": "#/$defs/reference"}  # where the spec schema keeps REFERENCE


def accept_reference(schema: dict) -> dict:
    """A schema that also takes a `${name}` reference in place of the value, or of a list's items.
    if/then/else keeps the errors about any other value (a plain string too) those of the original schema."""
    if not schema or "$ref" in schema or allows(schema, "string"):
        return schema
    if schema.get("type") == "array" and "items" in schema:
        schema = {**schema, "items": accept_reference(schema["items"])}
    notes = {k: schema[k] for k in ("default", "description") if k in schema}  # at the top, for editors
    rest = {k: v for k, v in schema.items() if k not in notes}
    return {**notes, "if": REFERENCE_REF, "else": rest}  # a reference matches `if`: nothing more to check


def _union_members(tp: Any) -> list[Any]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(tp) for m in _union_members(a)]
    return [tp]


def _converter(tp: Any) -> Callable[[Any], Any] | None:
    """How to turn a YAML value into what an annotation asks for, where they differ."""
    import torch

    members = _union_members(tp)
    if any(is_dtype(m) for m in members):
        return lambda v: getattr(torch, v) if isinstance(v, str) else v
    if any(is_tensor(m) for m in members) and not any(m in (int, float) for m in members):
        return lambda v: torch.tensor(v, dtype=torch.float32) if isinstance(v, list) else v
    if any(typing.get_origin(m) is tuple for m in members):
        return lambda v: tuple(v) if isinstance(v, list) else v
    return None


def constrain(schema: dict, extra: dict) -> dict:
    """Add numeric bounds to the numeric parts of a schema (inside unions and arrays too)."""
    if "anyOf" in schema:
        return {**schema, "anyOf": [constrain(s, extra) for s in schema["anyOf"]]}
    if schema.get("type") == "array":
        out = dict(schema)
        if "items" in out:
            out["items"] = constrain(out["items"], extra)
        if "prefixItems" in out:
            out["prefixItems"] = [constrain(s, extra) for s in out["prefixItems"]]
        return out
    if schema and (allows(schema, "number") or allows(schema, "integer")):
        return {**schema, **extra}
    return schema


def signature_params(
    fn: Callable,
    *,
    skip: Iterable[str] = (),
    constraints: dict[str, dict] | None = None,
) -> dict[str, Param] | None:
    """Params from a signature; None when a required argument cannot be written in YAML."""
    skip = set(skip) | {"self"}
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        hints = {}
    params: dict[str, Param] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.name in skip or p.name.startswith("_") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        tp = hints.get(p.name, p.annotation)
        if isinstance(tp, str):
            tp = inspect.Parameter.empty
        required = p.default is inspect.Parameter.empty
        if tp is inspect.Parameter.empty:
            schema = default_schema(p.default) if not required else {}
        else:
            schema = annotation_schema(tp)
        if schema is None:
            if required:
                return None
            continue  # an optional argument YAML cannot express keeps its default
        schema = dict(schema)
        if constraints and p.name in constraints:
            schema = constrain(schema, constraints[p.name])
        if not required:
            ok, value = json_default(p.default)
            if ok:
                schema["default"] = value
        params[p.name] = Param(p.name, schema, required, _converter(tp) if tp is not inspect.Parameter.empty else None)
    return params


def first_line(doc: str | None) -> str:
    """The first sentence of a docstring, joined across its wrapped lines."""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    paragraph = re.sub(r":\w+:`~?([^`]+)`", r"\1", paragraph).replace("``", "")
    sentence = paragraph.split(". ")[0].rstrip(".")
    return sentence + "." if sentence else ""


class Registry:
    """Names → entries, for one kind of thing (layer, loss, optimizer, ...)."""

    def __init__(self, kind: str, list_command: str | None = None, references: bool = False):
        self.kind = kind
        self.list_command = list_command
        self.references = references  # whether arguments may be `${name}` references (layers)
        self._entries: dict[str, Entry] = {}
        self._pending: list[Callable[[], list[Entry]]] = []  # entries whose import is slow, added on first need
        self._modules: dict[str, str] = {}  # name → the module that adds its entry when imported
        self.excluded: dict[str, str] = {}  # names left out on purpose → why, for the error that names one

    def exclude(self, name: str, reason: str) -> None:
        """A name this registry leaves out on purpose: a spec that uses it is told why, not 'unknown'."""
        self.excluded[name] = reason

    def add_later(self, load: Callable[[], list[Entry]]) -> None:
        """Entries to add when a name is not found or the whole registry is listed: a module whose import
        is slow (torchvision.models) costs nothing to specs that do not use it."""
        self._pending.append(load)

    def add_from_module(self, module: str, names: Iterable[str]) -> None:
        """Entries that importing `module` adds (the module calls `add`): looking up one of `names` imports
        that module alone, and listing the registry imports them all. A spec then pays only for the modules
        of what it names (torchvision's import takes a second or more)."""
        for name in names:
            self._modules[name] = module

    def _import_module_of(self, name: object) -> None:
        if name not in self._entries and name in self._modules:
            importlib.import_module(self._modules[name])

    def _load_pending(self) -> bool:
        loaded = bool(self._pending)
        while self._pending:
            for entry in self._pending.pop(0)():
                self.add(entry)
        return loaded

    def add(self, entry: Entry) -> Entry:
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} '{entry.name}' is registered twice; HINT: pick another name")
        self._entries[entry.name] = entry
        return entry

    def add_class(
        self,
        cls: type,
        *,
        name: str | None = None,
        skip: Iterable[str] = (),
        inferred: Iterable[str] = (),
        constraints: dict[str, dict] | None = None,
        signature_of: Callable | None = None,
        doc: str | None = None,
        left_out: dict[str, str] | None = None,
    ) -> Entry | None:
        """Register a class from its own `__init__` signature; None if YAML cannot build it. `left_out`: arguments
        the original takes that this entry does not, with why (a spec that gives one is told)."""
        params = signature_params(signature_of or cls.__init__, skip=skip, constraints=constraints)
        if params is None:
            return None
        return self.add(Entry(name or cls.__name__, cls, params, doc if doc is not None else first_line(cls.__doc__),
                              frozenset(inferred) & set(params), dict(left_out or {})))

    def __contains__(self, name: object) -> bool:
        self._import_module_of(name)
        return name in self._entries or (self._load_pending() and name in self._entries)

    def __getitem__(self, name: str) -> Entry:
        self._import_module_of(name)
        if name not in self._entries:
            self._load_pending()
        return self._entries[name]

    def names(self) -> list[str]:
        for module in sorted(set(self._modules.values())):
            importlib.import_module(module)
        self._load_pending()
        return sorted(self._entries, key=str.lower)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def unknown(self, name: str) -> str:
        """The message for a name this registry does not have."""
        if name in self.excluded:
            return f"{self.kind} '{name}' is left out on purpose: {self.excluded[name]}"
        hint = did_you_mean(name, self.names())  # every name, those of modules not imported yet too
        where = f" ('{self.list_command}' lists them)" if self.list_command else f" (known: {', '.join(self.names())})"
        return f"unknown {self.kind} '{name}'" + (f" — {hint}" if hint else "") + where

    def build_component(self, component: Any, spec: Any, **extra: Any) -> Any:
        """Build what a spec component names. Every problem becomes a located SpecError from
        `spec.error`: an unknown name or argument, a missing one, or the factory's own checks."""
        if component.name not in self:
            raise spec.error(component.path, self.unknown(component.name))
        entry = self[component.name]
        for key in component.kwargs:
            if key in entry.left_out:
                raise spec.error(component.path + (component.name, key), f"{component.name}'s '{key}' is left out "
                                 f"on purpose: {entry.left_out[key]}", key=True)
            if key not in entry.params:
                hint = did_you_mean(key, entry.params)
                raise spec.error(component.path + (component.name, key),
                                 f"{component.name} has no argument '{key}'" + (f" — {hint}" if hint else "")
                                 + f" (it takes: {', '.join(entry.params) or 'no arguments'})", key=True)
        missing = [name for name in entry.required if name not in component.kwargs]
        if missing:
            raise spec.error(component.path, f"{component.name} needs {', '.join(missing)}")
        try:
            return entry.build(component.kwargs, **extra)
        except (TypeError, ValueError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise spec.error(component.path, f"{component.name} cannot be built: {reason}") from None

    def item_schema(self) -> dict:
        """`Name` or `{Name: {kwargs}}`, with if/then/else so that errors stay specific."""
        excluded = {"x-excluded": dict(sorted(self.excluded.items()))} if self.excluded else {}
        return {
            "x-registry": self.kind,
            "if": {"type": "string"},
            "then": {"enum": [e.name for e in self.entries() if not e.required], "x-registry": self.kind, **excluded},
            "else": {
                "type": "object",
                "x-registry": self.kind,
                **excluded,
                "minProperties": 1,
                "maxProperties": 1,
                "properties": {e.name: e.kwargs_schema(self.references) for e in self.entries()},
                "additionalProperties": False,
            },
        }


def parse_item(item: str | dict) -> tuple[str, dict]:
    """`ReLU` → ('ReLU', {}); `{Linear: {out_features: 10}}` → ('Linear', {...})."""
    if isinstance(item, str):
        return item, {}
    (name, kwargs), = item.items()
    return name, dict(kwargs or {})
