"""torchvision's classification models as layers: `resnet18`, `mobilenet_v3_small`, `vit_b_16`, ...

Each takes `weights` (none by default; a weights enum member such as `ResNet18_Weights.IMAGENET1K_V1`,
its short form `IMAGENET1K_V1`, or `DEFAULT`) and `num_classes`. The classifier is the model's last Linear:
`head: null` drops it (the model then gives the features it classified: pooled features for a ResNet), and
`num_classes` beside pretrained weights replaces it by a new Linear of that size, as the fine-tuning
tutorials do (`model.fc = nn.Linear(model.fc.in_features, 2)`). Named weights are read from the torch
hub cache (torch.hub.get_dir()/checkpoints) and only from there: dtrain never downloads, so a missing
file is a located error at validation, not a hang at training time.
"""

from __future__ import annotations

import os
import re
from typing import Any

from declarative.registry import Entry, Param, first_line


def _weights_enum(name: str):
    from torchvision import models

    try:
        return models.get_model_weights(name)
    except (ValueError, KeyError):
        return None


def weights_file(weights) -> str:
    """Where torch.hub keeps a weights enum member's file."""
    import torch

    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))


def resolve_weights(model: str, value: str):
    """A spec's weights string → the enum member; ValueError with the choices when it is not one."""
    enum = _weights_enum(model)
    choices = [f"{enum.__name__}.{m.name}" for m in enum] if enum else []
    if enum is not None:
        short = value.split(".", 1)[1] if value.startswith(enum.__name__ + ".") else value
        if short == "DEFAULT":
            return enum.DEFAULT
        if short in enum.__members__:
            return enum[short]
    raise ValueError(f"{model} has no weights '{value}'" + (f" (it has: {', '.join(choices)} or DEFAULT)" if choices
                                                            else " (it has none)"))


KEEP = "keep"  # the default head: the model's own classifier


class TorchvisionModel:
    """Builds one torchvision model; named weights come from the hub cache through a weights-only load."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, weights: str | None = None, num_classes: int | None = None, head: Any = KEEP):
        import torch.nn as nn

        model = self._model(weights, None if head is None else num_classes)
        if head is None or (weights is not None and num_classes is not None):
            parent, name, last = _classifier(model, self.name)
            if head is None:
                setattr(parent, name, nn.Identity())
            elif num_classes != last.out_features:
                setattr(parent, name, nn.Linear(last.in_features, num_classes, bias=last.bias is not None))
        return model

    def _model(self, weights: str | None, num_classes: int | None):
        from torchvision import models

        from declarative.safe_load import load_weights_only

        builder = models.get_model_builder(self.name)
        kwargs = {} if num_classes is None else {"num_classes": num_classes}
        if weights is None:
            return builder(weights=None, **kwargs)
        member = resolve_weights(self.name, weights)
        categories = len(member.meta.get("categories") or [])
        path = weights_file(member)
        if not os.path.isfile(path):
            raise FileNotFoundError(path)
        model = builder(weights=None, num_classes=categories or 1000)
        import torch

        if next(iter(model.parameters())).device != torch.device("meta"):
            model.load_state_dict(load_weights_only(path))
        return model


def _classifier(model, name: str):
    """The module that holds the model's last Linear, the attribute name, and the Linear itself."""
    import torch.nn as nn

    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{name} has no Linear classifier to drop or replace")
    parent, _, attribute = linears[-1].rpartition(".")
    holder = model.get_submodule(parent) if parent else model
    return holder, attribute, getattr(holder, attribute)


def entries() -> list[Entry]:
    from torchvision import models

    out = []
    for name in models.list_models(module=models):
        builder = models.get_model_builder(name)
        enum = _weights_enum(name)
        options = ([f"{enum.__name__}.{m.name}" for m in enum] + [m.name for m in enum] + ["DEFAULT"]
                   if enum else [])
        params = {
            "weights": Param("weights", {"anyOf": [{"type": "null"}, {"enum": options}], "default": None,
                                         "description": "Pretrained weights, read from the torch hub cache."}, False),
            "num_classes": Param("num_classes", {"type": "integer", "minimum": 1, "default": 1000,
                                                 "description": "Classes of the head; beside weights: a new "
                                                                "Linear head of this size."}, False),
            "head": Param("head", {"type": "null", "description": "null: drop the classifier (the last Linear), "
                                                                  "giving the features it classified."}, False),
        }
        summary = re.sub(r"\s*<[^>]*>`_*", "", first_line(builder.__doc__)).replace("`", "")
        doc = f"torchvision.models.{name}: {summary}"
        out.append(Entry(name, TorchvisionModel(name), params, doc.strip()))
    return out
