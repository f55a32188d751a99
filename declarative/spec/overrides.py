"""Command-line overrides: `trainer.max_epochs=3 data.batch_size=128`.

Each value is parsed as YAML, so `[1, 2]`, `true` and `1e-3` mean what they would in the file.
The override's own text becomes the location of everything it sets.
"""

from __future__ import annotations

from typing import Any

from declarative.errors import Location, SpecError, UsageError
from declarative.spec.document import Document, load_text


def _parse_path(dotted: str) -> tuple:
    parts = dotted.split(".")
    if not all(parts):
        raise UsageError(f"override '{dotted}': empty key in the path")
    return tuple(int(p) if p.lstrip("-").isdigit() else p for p in parts)


def apply_override(doc: Document, text: str) -> None:
    """Set one `key.path=value` in the document, creating missing mappings on the way."""
    dotted, sep, raw = text.partition("=")
    if not sep or not dotted.strip():
        raise UsageError(f"override '{text}': expected key.path=value, e.g. trainer.max_epochs=3")
    path = _parse_path(dotted.strip())
    try:  # the spec file's loader, and its limits: no tags, no alias bombs, no endless nesting
        value = load_text(raw, "override").data if raw.strip() else None
    except SpecError as exc:
        reason = exc.problems[0].message
        raise UsageError(f"override '{text}': the value is not valid YAML ({reason})") from None

    if not isinstance(doc.data, dict):
        doc.data = {}
    node: Any = doc.data
    resolved = []  # the path as the data holds it: list indices stay ints, mapping keys are strings
    for i, part in enumerate(path[:-1]):
        here = path[: i + 1]
        if isinstance(node, list):
            if not isinstance(part, int) or not -len(node) <= part < len(node):
                raise UsageError(f"override '{text}': '{'.'.join(map(str, here))}' is not an index of the list there "
                                 f"(it has {len(node)} items)")
            node = node[part]
            resolved.append(part)
        elif isinstance(node, dict):
            part = str(part)
            if not isinstance(node.get(part), (dict, list)):
                if isinstance(path[i + 1], int):  # an index into a list the spec does not have
                    raise UsageError(f"override '{text}': '{'.'.join(map(str, here))}' is not a list in the spec — "
                                     f"give it whole, e.g. {'.'.join(map(str, here))}=[...]")
                node[part] = {}
            node = node[part]
            resolved.append(part)
        else:
            raise UsageError(f"override '{text}': '{'.'.join(map(str, here[:-1]))}' is a value, not a mapping")
    last = path[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or not -len(node) <= last < len(node):
            raise UsageError(f"override '{text}': index {last} is out of range (the list has {len(node)} items)")
        node[last] = value
    else:
        last = str(last)
        node[last] = value
    path = (*resolved, last)

    where = Location(doc.file, override=text)
    for known in [p for p in doc.positions if p[: len(path)] == path]:
        del doc.positions[known]
    doc.positions[path] = where
    doc.key_positions[path] = where


def apply_overrides(doc: Document, overrides: list[str]) -> Document:
    for text in overrides:
        apply_override(doc, text)
    return doc
