"""The model language's shape on paper, without torch: what a layer item may hold, the constructs,
blocks and `${...}` references.

A layer item is a layer name (`ReLU`) or a mapping that names one layer (`{Linear: {out_features: 10}}`),
optionally with wiring keys beside it:

    - Conv2d: {out_channels: 16, kernel_size: 3}
      name: enc1              # later layers of this list can read this output by name
    - cat: {dim: 1}
      input: [up1, enc1]      # read these outputs instead of the previous layer's
    - LSTM: {hidden_size: 64, batch_first: true}
      output: 0               # the layer returns a tuple: keep element 0

This module is imported by the schema stage of `dtrain validate`, which must not import torch.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Iterator

# Keys of a layer item that wire it into the graph rather than name a layer.
WIRING = ("name", "input", "output")
# Keys of a layer item that set up its parameters (declarative.model.freezing, declarative.model.init).
SETTINGS = ("trainable", "train_bn", "init")
ITEM_KEYS = WIRING + SETTINGS

# Constructs that hold layer lists of their own, and where those lists are in their arguments.
CONSTRUCTS = {"residual": ("layers", "shortcut"), "parallel": ("branches",), "repeat": ("layers",)}

BLOCK_NAME = r"^[A-Z][A-Za-z0-9_]*$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
REFERENCE_PATTERN = r"^\$\{\s*[A-Za-z_][A-Za-z0-9_.]*\s*\}$"


def block_reference_pattern(layer_names: list[str]) -> str:
    """BLOCK_NAME, less the names that differ from a known layer's only in case (`Relu`, `Conv2D`,
    `Resnet18`): those are misspelt layers, so that an editor flags them with the static schema, which
    cannot know the spec's own block names. (A negative lookahead: both Python's and JavaScript's
    regular expressions have it.)"""
    def any_case(name: str) -> str:
        return "".join(f"[{c.upper()}{c.lower()}]" if c.upper() != c.lower() else re.escape(c) for c in name)

    variants = "|".join(any_case(name) for name in sorted(layer_names) if re.fullmatch(r"[A-Za-z0-9_]+", name))
    return rf"^(?!(?:{variants})$)[A-Z][A-Za-z0-9_]*$"


_REFERENCE = re.compile(r"^\$\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}$")

# Values a spec can take from its data.
DATA_VALUES = ("data.num_classes", "data.input_shape", "data.vocab_size")


def reference_name(value: Any) -> str | None:
    """`'${data.num_classes}'` → `'data.num_classes'`; None for anything that is not a reference."""
    if isinstance(value, str):
        match = _REFERENCE.match(value)
        if match:
            return match.group(1)
    return None


def split_item(item: Any) -> tuple[str | None, Any, dict]:
    """A layer item → (layer name, its arguments, its wiring keys). The name is None when the item
    names no layer, or names several (the schema stage reports both)."""
    if isinstance(item, str):
        return item, None, {}
    if not isinstance(item, dict):
        return None, None, {}
    wiring = {k: v for k, v in item.items() if k in ITEM_KEYS}
    names = [k for k in item if k not in ITEM_KEYS]
    if len(names) != 1:
        return None, None, wiring
    return names[0], item[names[0]], wiring


def layer_lists(model: Any, path: tuple = ("model",)) -> Iterator[tuple[list, tuple]]:
    """Every layer list of a raw model section, with its path: the model's, each block's, and those
    inside residual / parallel / repeat items, at any depth."""
    if not isinstance(model, dict):
        return
    if isinstance(model.get("layers"), list):
        yield from _nested(model["layers"], path + ("layers",))
    blocks = model.get("blocks")
    if isinstance(blocks, dict):
        for name, block in blocks.items():
            if isinstance(block, dict) and isinstance(block.get("layers"), list):
                yield from _nested(block["layers"], path + ("blocks", name, "layers"))


def _nested(items: list, path: tuple) -> Iterator[tuple[list, tuple]]:
    yield items, path
    for i, item in enumerate(items):
        name, kwargs, _ = split_item(item)
        if name not in CONSTRUCTS or not isinstance(kwargs, dict):
            continue
        for key in CONSTRUCTS[name]:
            value = kwargs.get(key)
            if name == "parallel" and isinstance(value, list):
                for b, branch in enumerate(value):
                    if isinstance(branch, list):
                        yield from _nested(branch, path + (i, name, key, b))
            elif isinstance(value, list):
                yield from _nested(value, path + (i, name, key))


def item_problems(doc) -> list:
    """What the schema cannot say about layer items: a mapping names exactly one layer, and a block
    does not take the name of a layer."""
    model = doc.data.get("model") if isinstance(doc.data, dict) else None
    problems = []
    for items, path in layer_lists(model):
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            names = [k for k in item if k not in ITEM_KEYS]
            if not names:
                problems.append(doc.problem(path + (i,), "this item names no layer, only "
                                            + ", ".join(item) + " — e.g. `- Linear: {out_features: 10}` with "
                                            "`name:` beside it"))
            elif len(names) > 1:
                problems.append(doc.problem(path + (i,), f"one item names one layer; this one names {len(names)}: "
                                                         f"{', '.join(names)} — make each its own list item"))
    return problems


def block_problems(doc, layer_names) -> list:
    """A block may not take the name of a layer: a use of it would be ambiguous."""
    model = doc.data.get("model") if isinstance(doc.data, dict) else None
    blocks = model.get("blocks") if isinstance(model, dict) else None
    if not isinstance(blocks, dict):
        return []
    return [doc.problem(("model", "blocks", name), f"block '{name}' has the name of a layer; pick another name",
                        key=True) for name in blocks if name in layer_names]


def specialise(schema: dict, blocks: dict) -> dict:
    """The committed schema, told this spec's blocks: their names become layer names with their own
    parameters, and any other unknown name is rejected (the committed schema, which cannot know a spec's
    blocks, admits any CamelCase name there)."""
    schema = copy.deepcopy(schema)
    layer = schema["$defs"]["layer"]
    names = [n for n in blocks if isinstance(n, str) and n not in layer["else"]["properties"]]
    layer["then"] = {"enum": [*layer["then"]["anyOf"][0]["enum"], *names], "x-registry": "layer"}
    layer["else"].pop("patternProperties", None)
    for name in names:
        block = blocks[name] if isinstance(blocks[name], dict) else {}
        params = block.get("params") if isinstance(block.get("params"), dict) else {}
        required = [p for p, default in params.items() if default is None]
        layer["else"]["properties"][name] = {
            "x-entry": name,
            "type": "object" if required else ["object", "null"],
            "properties": {p: {} for p in params},
            "additionalProperties": False,
            **({"required": required} if required else {}),
        }
    return schema
