"""YAML → plain data, keeping the source position of every key and value.

Later stages report problems against a path such as ``("model", "layers", 3, "Linear")``;
the document turns that path back into ``file:line:col``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from declarative.errors import Location, Problem, SpecError

PathKey = tuple  # a path into the document: str keys and int indices


# Limits that keep a hostile or broken document from exhausting the stack, the memory or the time of
# `dtrain validate`: a spec is a page or two of YAML; these are far beyond any real one.
MAX_BYTES = 256_000  # characters of a spec file (real ones are a few thousand)
MAX_DEPTH = 100  # mappings and lists nested in each other
MAX_VALUES = 100_000  # keys and values once aliases are expanded (a "billion laughs" stops here)


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader (no Python objects, no code) that reads `1e-3` as a float, as YAML 1.2 does.

    PyYAML follows YAML 1.1, where a float needs a dot, so `lr: 1e-3` would be the string '1e-3'.
    It also refuses nesting deeper than MAX_DEPTH before PyYAML's recursive composer runs out of stack.
    """

    depth = 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"values are nested more than {MAX_DEPTH} deep",
                                                  mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_SpecLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


# YAML 1.2's core schema: no timestamps (a date stays the string it looks like), no binary, no Python.
_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _SpecLoader.yaml_implicit_resolvers.items()}

_PLAIN_COLLECTIONS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
_PLAIN_SCALARS = {f"tag:yaml.org,2002:{kind}" for kind in ("str", "int", "float", "bool", "null", "merge")}


@dataclass
class Document:
    """A loaded spec: its data, and where each part of it was written."""

    file: str
    data: Any
    positions: dict[PathKey, Location] = field(default_factory=dict)
    key_positions: dict[PathKey, Location] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        """Relative paths in a spec are relative to the spec file's folder."""
        return Path(self.file).resolve().parent

    def locate(self, path: PathKey, *, key: bool = False) -> Location:
        """The position of the value at `path` (or of its key), else of its nearest parent."""
        path = tuple(path)
        if key and path in self.key_positions:
            return self.key_positions[path]
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), Location(self.file, 1, 1))

    def problem(self, path: PathKey, message: str, *, key: bool = False) -> Problem:
        return Problem(self.locate(path, key=key), message)

    def error(self, path: PathKey, message: str, *, key: bool = False) -> SpecError:
        return SpecError(self.problem(path, message, key=key))


def _location(file: str, mark: yaml.Mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def _reader_problem(exc: yaml.reader.ReaderError, text: str, file: str) -> Problem:
    """A character YAML does not allow (a NUL byte, say), located by its line and column."""
    before = text[:exc.position]
    line = before.count("\n") + 1
    col = exc.position - (before.rfind("\n") + 1) + 1
    return Problem(Location(file, line, col), f"YAML error: character #x{exc.character:04x} is not allowed in "
                                              f"YAML ({exc.reason}) — a spec is plain text")


def load_text(text: str, file: str) -> Document:
    """Parse YAML text into a Document; a syntax error becomes a located SpecError."""
    doc = Document(file=file, data=None)
    if len(text) > MAX_BYTES:
        raise SpecError(Problem(Location(file), f"the spec is longer than {MAX_BYTES:,} characters, the most a spec "
                                                f"may hold (keep data in data files)"))
    loader = None
    expanded = 0  # keys and values visited, aliases counted each time they are used

    def walk(node: yaml.Node, path: PathKey, holders: tuple[int, ...]) -> Any:
        nonlocal expanded
        expanded += 1
        if expanded > MAX_VALUES:
            raise SpecError(Problem(_location(file, node.start_mark),
                                    f"the spec expands to more than {MAX_VALUES:,} values: aliases (*name) repeated "
                                    f"inside aliases multiply them"))
        if id(node) in holders:
            raise SpecError(Problem(_location(file, node.start_mark),
                                    "an alias refers to a value that holds it: it would repeat without end"))
        doc.positions[path] = _location(file, node.start_mark)
        if node.tag not in (_PLAIN_SCALARS if isinstance(node, yaml.ScalarNode) else _PLAIN_COLLECTIONS):
            raise SpecError(Problem(_location(file, node.start_mark),
                                    f"YAML tag {node.tag} is not allowed: a spec holds plain data only"))
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
            holders = holders + (id(node),)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True) if isinstance(key_node, yaml.ScalarNode) else None
                if type(key) is int and key >= 0:  # `{4: 2}`: an epoch-keyed schedule, as Lightning writes it
                    key = str(key)
                if not isinstance(key, str):
                    shown = repr(key) if isinstance(key_node, yaml.ScalarNode) else "a list or mapping"
                    raise SpecError(Problem(_location(file, key_node.start_mark), f"keys must be strings, got {shown}"))
                if key in out:
                    raise SpecError(Problem(_location(file, key_node.start_mark),
                                            f"duplicate key '{key}': each key may appear once in a mapping"))
                doc.key_positions[path + (key,)] = _location(file, key_node.start_mark)
                out[key] = walk(value_node, path + (key,), holders)
            return out
        if isinstance(node, yaml.SequenceNode):
            holders = holders + (id(node),)
            return [walk(item, path + (i,), holders) for i, item in enumerate(node.value)]
        return loader.construct_object(node, deep=True)

    try:
        loader = _SpecLoader(text)  # inside the try: the reader checks the characters as it starts
        node = loader.get_single_node()
        doc.data = walk(node, (), ()) if node is not None else None
    except yaml.reader.ReaderError as exc:
        raise SpecError(_reader_problem(exc, text, file)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _location(file, mark) if mark else Location(file)
        what = " ".join(filter(None, [exc.context, exc.problem]))
        raise SpecError(Problem(where, f"YAML syntax error: {what}")) from None
    except yaml.YAMLError as exc:  # e.g. an unsupported tag
        raise SpecError(Problem(Location(file), f"YAML error: {exc}")) from None
    finally:
        if loader is not None:
            loader.dispose()
    return doc


def plain_data_problem(data: Any, file: str) -> Problem | None:
    """What keeps data that did not come through the YAML loader (a checkpoint's embedded spec) from being
    a spec's plain data: a value of another type, a key that is not a string, or the loader's limits."""
    stack, count = [(data, 1)], 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH or count > MAX_VALUES:
            return Problem(Location(file), f"its spec is nested more than {MAX_DEPTH} deep or holds more than "
                                           f"{MAX_VALUES:,} values")
        if isinstance(value, dict):
            if not all(isinstance(key, str) for key in value):
                return Problem(Location(file), "its spec has a key that is not a string")
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            return Problem(Location(file), f"its spec holds a {type(value).__name__} where a spec holds plain data")
    return None


def load_file(path: str | Path) -> Document:
    path = str(path)
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read(MAX_BYTES + 1)  # no further: the file may be endless (a device, a pipe)
    except FileNotFoundError:
        raise SpecError(Problem(Location(path), "no such file")) from None
    except IsADirectoryError:
        raise SpecError(Problem(Location(path), "is a folder, not a spec file")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(Problem(Location(path), f"cannot read the spec: {exc}")) from None
    return load_text(text, path)
