"""The layer registry: torch.nn's layers, described from their own signatures."""

from __future__ import annotations

import torch
import torch.nn as nn

from declarative.registry import Entry, Param, Registry, first_line, signature_params

LAYERS = Registry("layer", list_command="dtrain layers", references=True)

# Arguments that dtrain fills in from the shape of the layer's input, by the dimension they read.
# `channel` is dim 1 of (N, C, ...); `last` is the feature dim of (N, ..., H).
INFERRED_FROM = {
    "in_features": "last",
    "input_size": "last",
    "embed_dim": "last",
    "d_model": "last",
    "normalized_shape": "last",
    "in_channels": "channel",
    "num_features": "channel",
    "num_channels": "channel",
}

# Where parameters live and in which dtype is the trainer's choice (accelerator, precision).
PLACEMENT = {"device", "dtype"}

_POSITIVE = {"minimum": 1}
_PROBABILITY = {"minimum": 0, "maximum": 1}
CONSTRAINTS = {
    **{name: _POSITIVE for name in (
        "in_features", "out_features", "in_channels", "out_channels", "num_features", "num_channels",
        "input_size", "hidden_size", "num_layers", "embed_dim", "num_heads", "d_model", "nhead",
        "dim_feedforward", "num_embeddings", "embedding_dim", "num_groups", "kernel_size", "stride",
        "groups", "dilation", "normalized_shape",
    )},
    "p": _PROBABILITY,
    "dropout": _PROBABILITY,
    "eps": {"exclusiveMinimum": 0},
}

# Not layers a spec lists: containers, lazy modules (dtrain infers shapes itself), base classes.
_EXCLUDED = {
    "Module", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict", "Container",
    "RNNBase", "RNNCellBase", "CrossMapLRN2d", "NLLLoss2d",
}


def _is_layer(name: str, obj: object) -> bool:
    return (
        isinstance(obj, type)
        and issubclass(obj, nn.Module)
        and not name.startswith(("_", "Lazy"))
        and not name.endswith("Loss")
        and name not in _EXCLUDED
    )


def _register_recurrent(cls: type[nn.Module]) -> None:
    """RNN, LSTM and GRU take *args; their arguments are RNNBase's, less `mode`."""
    params = signature_params(nn.RNNBase.__init__, skip={"mode", *PLACEMENT}, constraints=CONSTRAINTS)
    if cls is nn.RNN:

        params["nonlinearity"] = Param("nonlinearity", {"enum": ["tanh", "relu"], "default": "tanh"}, False)
    LAYERS.add(Entry(cls.__name__, cls, params, first_line(cls.__doc__), frozenset({"input_size"})))


class TransformerEncoderLayer(nn.TransformerEncoderLayer):
    """nn.TransformerEncoderLayer whose second input, when an item's `input:` names one, is the key padding
    mask (True at <pad> tokens, e.g. from `padding_mask`): padded positions are not attended to."""

    def forward(self, src: torch.Tensor, src_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(src, src_key_padding_mask=src_key_padding_mask)


for _name in sorted(dir(nn)):
    _cls = getattr(nn, _name)
    if not _is_layer(_name, _cls):
        continue
    if _cls in (nn.RNN, nn.LSTM, nn.GRU):
        _register_recurrent(_cls)
        continue
    if _cls is nn.TransformerEncoderLayer:
        LAYERS.add_class(TransformerEncoderLayer, skip=PLACEMENT, inferred=INFERRED_FROM, constraints=CONSTRAINTS,
                         signature_of=nn.TransformerEncoderLayer.__init__, doc=first_line(_cls.__doc__))
        continue
    try:
        LAYERS.add_class(_cls, skip=PLACEMENT, inferred=INFERRED_FROM, constraints=CONSTRAINTS)
    except (TypeError, ValueError):  # a signature inspect cannot read: not offered
        continue


def _construct(name: str) -> object:
    def build(**kwargs):
        raise TypeError(f"{name} is built by the model builder, not called")  # never reached: builder.py builds it

    return build


_LAYER_LIST = {"$ref": "#/$defs/layer_list"}

# The graph constructs: layer lists inside a layer item. builder.py gives them their meaning.
CONSTRUCT_ENTRIES = [
    Entry("residual", _construct("residual"), {
        "layers": Param("layers", _LAYER_LIST, True),
        "shortcut": Param("shortcut", {**_LAYER_LIST, "description": "A projection for x (default: x itself)."},
                          False),
    }, "x + layers(x), or shortcut(x) + layers(x) with a projection shortcut."),
    Entry("parallel", _construct("parallel"), {
        "branches": Param("branches", {"type": "array", "items": _LAYER_LIST, "minItems": 2}, True),
        "merge": Param("merge", {"$ref": "#/$defs/layer",
                                 "description": "The layer that combines the branches, e.g. add or {cat: {dim: 1}}."},
                       True),
    }, "Branches that each read the same input, combined by a merge layer (add, cat, ...)."),
    Entry("repeat", _construct("repeat"), {
        "times": Param("times", {"type": "integer", "minimum": 1, "maximum": 10_000}, True),
        "layers": Param("layers", _LAYER_LIST, True),
    }, "The layers `times` times over, each time with weights of its own."),
]

from declarative.model.functional import FUNCTIONS  # noqa: E402
from declarative.model.pretrained import entries as _torchvision_entries  # noqa: E402

for _entry in [*CONSTRUCT_ENTRIES, *FUNCTIONS]:
    LAYERS.add(_entry)
LAYERS.add_later(_torchvision_entries)  # importing torchvision.models takes a second or more
