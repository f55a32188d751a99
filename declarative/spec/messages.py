"""jsonschema errors → one located, plain-English line each, with the fix where we know it."""

from __future__ import annotations

import difflib
import math
from typing import Any

from jsonschema.exceptions import ValidationError

from declarative.errors import Problem, did_you_mean
from declarative.spec.document import Document

MAX_UNKNOWN_KEYS = 50  # named one by one in one mapping; the rest are counted

_ARTICLES = {"integer": "an integer", "number": "a number", "boolean": "true or false", "string": "a string",
             "null": "null", "object": "a mapping", "array": "a list"}


def show(value: Any) -> str:
    """A value as the user wrote it in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'" if len(value) <= 60 else f"'{value[:60]}...' ({len(value)} characters)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):  # a message stays one readable line, whatever the list
        if len(value) > 8:
            return "[" + ", ".join(show(v) for v in value[:8]) + f", ... ({len(value)} items)]"
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if value != value else (".inf" if value > 0 else "-.inf")
    return repr(value)


def _bounds(schema: dict) -> str:
    parts = []
    if "minimum" in schema:
        parts.append(f">= {schema['minimum']}")
    if "exclusiveMinimum" in schema:
        parts.append(f"> {schema['exclusiveMinimum']}")
    if "maximum" in schema:
        parts.append(f"<= {schema['maximum']}")
    if "exclusiveMaximum" in schema:
        parts.append(f"< {schema['exclusiveMaximum']}")
    return (" " + " and ".join(parts)) if parts else ""


def _plural(description: str) -> str:
    """'an integer >= 1' → 'integers >= 1'."""
    for article in ("a ", "an "):
        if description.startswith(article):
            word, _, rest = description[len(article):].partition(" ")
            return f"{word}s" + (f" {rest}" if rest else "")
    return description


def describe(schema: dict) -> str:
    """What a schema accepts, in words: 'an integer >= 1 or a list of 2 integers'."""
    if not schema:
        return "any value"
    if schema.get("x-reference"):
        return "a ${...} reference"
    if "$ref" in schema:  # a registry item: '#/$defs/logger' → 'a logger'
        return f"a {schema['$ref'].rsplit('/', 1)[-1]}"
    if "anyOf" in schema:
        return " or ".join(describe(s) for s in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(show(v) for v in schema["enum"])
    if "const" in schema:
        return show(schema["const"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(describe({**schema, "type": k}) for k in kind)
    if kind == "array":
        if "prefixItems" in schema:
            items = schema["prefixItems"]
            if all(i == items[0] for i in items):
                return f"a list of {len(items)} {_plural(describe(items[0]))}"
            return "a list of " + ", ".join(describe(i) for i in items)
        if "items" in schema and schema["items"]:
            return f"a list of {_plural(describe(schema['items']))}"
        return "a list"
    return _ARTICLES.get(kind, str(kind)) + _bounds(schema)


def _name(path: tuple) -> str:
    """How to call the value at a path in a message: its key, or 'item i of <key>'."""
    if not path:
        return "the spec"
    if isinstance(path[-1], int):
        return f"item {path[-1]} of {_name(path[:-1])}"
    return str(path[-1])


def _context(path: tuple, schema: dict) -> str:
    if "x-entry" in schema:
        return f"{schema['x-entry']}"
    return ".".join(map(str, path)) if path else "the spec"


def _registry_names(root: dict, kind: str) -> dict[str, dict]:
    """The entries (name → kwargs schema) of a registry, read back from the schema itself."""
    for definition in root.get("$defs", {}).values():
        if definition.get("x-registry") == kind:
            return definition["else"]["properties"]
    return {}


def problems_from_error(error: ValidationError, doc: Document, root: dict) -> list[Problem]:
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    kind = error.validator
    name = _name(path)
    if isinstance(instance, float) and not math.isfinite(instance):
        return []  # NaN and infinity are reported once, wherever they are (declarative.spec.safety)

    if kind == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        out = []
        extras = [k for k in instance if k not in allowed]
        if len(extras) > MAX_UNKNOWN_KEYS:  # a file of a million unknown keys: name some, count the rest
            out.append(doc.problem(path, f"{len(extras) - MAX_UNKNOWN_KEYS} more unknown keys in "
                                         f"{_context(path, schema)}"))
        for extra in extras[:MAX_UNKNOWN_KEYS]:
            hint = did_you_mean(extra, allowed)
            if extra in schema.get("x-excluded", {}):
                message = f"{schema['x-registry']} '{extra}' is left out on purpose: {schema['x-excluded'][extra]}"
            elif "x-registry" in schema:
                registry = schema["x-registry"]
                message = f"unknown {registry} '{extra}'" + (f" — {hint}" if hint else "")
                message += f" (`dtrain layers --kind {registry.split()[-1]}` lists them)" if registry != "layer" \
                    else " (`dtrain layers` lists them)"
            elif extra in schema.get("x-left-out", {}):
                message = f"{schema['x-entry']}'s '{extra}' is left out on purpose: {schema['x-left-out'][extra]}"
            elif "x-entry" in schema:
                message = f"{schema['x-entry']} has no argument '{extra}'" + (f" — {hint}" if hint else "")
                message += f" (it takes: {', '.join(allowed) or 'no arguments'})"
            else:
                message = f"unknown key '{extra}' in {_context(path, schema)}" + (f" — {hint}" if hint else "")
                message += f" (allowed: {', '.join(allowed)})"
            out.append(doc.problem(path + (extra,), message, key=True))
        return out

    if kind == "required":
        missing = [k for k in error.validator_value if k not in instance]
        # A misspelt key is reported as unknown, with the fix; don't report it missing as well.
        unknown = [k for k in instance if k not in schema.get("properties", {})]
        missing = [k for k in missing if not difflib.get_close_matches(k, unknown, n=1, cutoff=0.6)]
        if not missing:
            return []
        if "x-entry" in schema:
            message = f"{schema['x-entry']} needs " + ", ".join(missing)
        else:
            message = f"{_context(path, schema)} needs the key " + ", ".join(f"'{k}'" for k in missing)
        return [doc.problem(path, message)]

    if kind == "enum" and "x-registry" in schema:
        registry = schema["x-registry"]
        entries = _registry_names(root, registry)
        if instance in entries:
            needs = entries[instance].get("required", [])
            return [doc.problem(path, f"{registry} {instance} needs arguments: write "
                                      f"{{{instance}: {{{', '.join(f'{k}: ...' for k in needs)}}}}}")]
        if not isinstance(instance, str):
            return [doc.problem(path, f"{name} must name a {registry}, got {show(instance)}")]
        if instance in schema.get("x-excluded", {}):
            return [doc.problem(path, f"{registry} '{instance}' is left out on purpose: {schema['x-excluded'][instance]}")]
        hint = did_you_mean(instance, entries)
        lister = "dtrain layers" if registry == "layer" else f"dtrain layers --kind {registry.split()[-1]}"
        return [doc.problem(path, f"unknown {registry} '{instance}'" + (f" — {hint}" if hint else "")
                            + f" (`{lister}` lists them)")]

    if kind == "enum":
        hint = did_you_mean(str(instance), [str(v) for v in schema["enum"]])
        return [doc.problem(path, f"{name} must be one of {', '.join(show(v) for v in schema['enum'])}, "
                                  f"got {show(instance)}" + (f" — {hint}" if hint else ""))]

    if kind in ("minProperties", "maxProperties") and "x-registry" in schema:
        registry = schema["x-registry"]
        if not instance:
            return [doc.problem(path, f"an empty mapping where a {registry} should be named")]
        return [doc.problem(path, f"one entry names one {registry}; this one names {len(instance)}: "
                                  f"{', '.join(instance)} — make each its own list item")]

    if kind in ("minProperties", "maxProperties"):
        return [doc.problem(path, f"{name} takes exactly one of {', '.join(schema.get('properties', {}))}")]

    if kind == "oneOf" and all(set(option) == {"required"} for option in schema["oneOf"]):
        keys = [key for option in schema["oneOf"] for key in option["required"]]
        return [doc.problem(path, f"{name} takes exactly one of {', '.join(keys)}")]

    if kind == "dependentRequired":
        return [doc.problem(path + (key,), f"{key} needs {', '.join(needs)} beside it", key=True)
                for key, needs in schema["dependentRequired"].items()
                if key in instance and any(n not in instance for n in needs)]

    if kind in ("type", "anyOf", "oneOf"):
        hint = ""
        if isinstance(instance, float) and instance.is_integer() and "integer" in describe(schema):
            hint = f" — write {int(instance)}, without the decimal point"  # one rule: an integer is written as one
        return [doc.problem(path, f"{name} must be {describe(schema)}, got {show(instance)}{hint}")]

    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return [doc.problem(path, f"{name} must be{_bounds(schema)}, got {show(instance)}")]

    if kind in ("minItems", "maxItems"):
        count = len(instance)
        if kind == "minItems" and "prefixItems" not in schema:
            return [doc.problem(path, f"{name} needs at least {schema['minItems']} item(s), got {count}")]
        return [doc.problem(path, f"{name} must be {describe(schema)}, got {show(instance)}")]

    if kind in ("minLength", "maxLength"):
        shown = show(instance if len(instance) <= 40 else instance[:40] + "...")
        return [doc.problem(path, f"{name} {shown} has {len(instance)} characters; it may have "
                                  + (f"at most {schema['maxLength']}" if kind == "maxLength"
                                     else f"at least {schema['minLength']}"))]

    if kind == "pattern" and "x-pattern" in schema:
        return [doc.problem(path, f"{name} {show(instance)} {schema['x-pattern']}")]

    if kind == "pattern":
        return [doc.problem(path, f"{name} {show(instance)} may hold only letters, digits, '.', '_' and '-'")]

    return [doc.problem(path, f"{name}: {error.message}")]
