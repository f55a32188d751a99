"""The JSON Schema (draft 2020-12) of a spec, generated from the registries.

`dtrain schema` prints it; schemas/spec.schema.json is the committed copy that editors
(yaml-language-server), check-jsonschema and `dtrain validate`'s first stage read.
Keys that start with `x-` are annotations for dtrain's own error messages; validators ignore them.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

from declarative.registry import Registry, constrain
from declarative.spec.jsontypes import annotation_schema, json_default

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"


def registries() -> dict[str, Registry]:
    """Every registry a spec draws names from, by the `$defs` key its items use."""
    from declarative.callbacks import CALLBACKS
    from declarative.data.mixing import BATCH_TRANSFORMS
    from declarative.data.sources import SOURCES
    from declarative.data.transforms import TRANSFORMS
    from declarative.loggers import LOGGERS
    from declarative.model.init import INITIALIZERS
    from declarative.model.layers import LAYERS
    from declarative.training.components import LOSSES, OPTIMIZERS, SCHEDULERS
    from declarative.training.metrics import METRICS

    return {
        "layer": LAYERS, "loss": LOSSES, "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS,
        "source": SOURCES, "transform": TRANSFORMS, "callback": CALLBACKS, "logger": LOGGERS, "metric": METRICS,
        "initializer": INITIALIZERS, "batch_transform": BATCH_TRANSFORMS,
    }


def plugin_registries() -> dict[str, Registry]:
    """The engine's plugin registries, named by `trainer.accelerator`, `trainer.strategy`, `trainer.precision`."""
    from declarative.training.accelerators import ACCELERATORS
    from declarative.training.precision import PRECISIONS
    from declarative.training.strategies import STRATEGIES

    return {"accelerator": ACCELERATORS, "strategy": STRATEGIES, "precision": PRECISIONS}


def trainer_schema() -> dict:
    """The `trainer:` section: Lightning's arguments, with the accelerator, strategy and precision choices
    taken from the engine's plugin registries."""
    from declarative.spec.config import TrainerConfig
    from declarative.training.accelerators import ACCELERATOR_CHOICES
    from declarative.training.precision import PRECISION_CHOICES
    from declarative.training.settings import MINUS_ONE_ALLOWED

    plugins = plugin_registries()
    schema = dataclass_schema(TrainerConfig)
    props = schema["properties"]

    def notes(name: str) -> dict:
        return {k: v for k, v in props[name].items() if k in ("description", "default")}

    for name in MINUS_ONE_ALLOWED:  # Lightning's -1: no limit (max_epochs, max_steps) or all (sanity steps)
        branches = props[name].pop("anyOf", None) or [{k: props[name].pop(k) for k in list(props[name])
                                                      if k not in ("description", "default")}]
        props[name]["anyOf"] = [branches[0], {"const": -1}, *branches[1:]]
    props["max_time"] = {**notes("max_time"), "anyOf": [
        {"type": "string", "pattern": r"^\d+:\d{2}:\d{2}:\d{2}$"},
        {"type": "object", "minProperties": 1, "additionalProperties": False,
         "properties": {unit: {"type": "number", "minimum": 0} for unit in ("days", "hours", "minutes", "seconds")}},
        {"type": "null"}]}
    props["val_check_interval"] = {**notes("val_check_interval"), "anyOf": [  # a batch count, or a fraction
        {"type": "integer", "minimum": 1}, {"type": "number", "exclusiveMinimum": 0, "maximum": 1}]}
    props["accelerator"] = {**notes("accelerator"), "enum": ACCELERATOR_CHOICES}
    props["precision"] = {**notes("precision"), "enum": PRECISION_CHOICES}
    props["devices"] = {**notes("devices"), "if": {"type": "string"}, "then": {"const": "auto"},
                        "else": {"if": {"type": "array"},
                                 "then": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1,
                                          "uniqueItems": True},
                                 "else": {"type": "integer", "minimum": -1, "not": {"const": 0}}}}
    strategies = plugins["strategy"].item_schema()
    props["strategy"] = {**notes("strategy"), "x-registry": "strategy", "if": {"type": "string"},
                         "then": {"enum": ["auto", *plugins["strategy"].names()]}, "else": strategies["else"]}
    props["callbacks"] = _ref("callbacks")
    props["logger"] = _ref("loggers")
    return schema


def dataclass_schema(cls: type) -> dict:
    """An object schema from a settings dataclass: field types, defaults, docs and bounds."""
    hints = typing.get_type_hints(cls)
    properties = {}
    for f in dataclasses.fields(cls):
        schema = dict(annotation_schema(hints[f.name]) or {})
        bounds = {k: v for k, v in f.metadata.items() if k != "doc"}
        if bounds:
            schema = constrain(schema, bounds)
        if "doc" in f.metadata:
            schema["description"] = f.metadata["doc"]
        ok, default = json_default(f.default)
        if ok:
            schema["default"] = default
        properties[f.name] = schema
    return {"type": "object", "properties": properties, "additionalProperties": False}


def class_path_form(regs: dict[str, Registry], kind: str, arguments: str) -> dict:
    """LightningCLI's `{class_path: a.b.Name, init_args: {...}}` for an entry of `kind`; `arguments` is the
    JSON pointer of the `{Name: {...}}` form's properties (each class's init_args are checked as those)."""
    names = regs[kind].names()
    return {
        "type": "object", "required": ["class_path"], "additionalProperties": False,
        "properties": {
            "class_path": {"type": "string", "pattern": rf"(^|\.)({'|'.join(names)})$",
                           "description": f"LightningCLI's form: a {kind} named by its class (the module part is "
                                          "not read; nothing is imported)."},
            # closed by the class's own arguments (allOf below)
            "init_args": {"type": ["object", "null"], "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                          "description": "Its arguments."}},
        "allOf": [{"if": {"properties": {"class_path": {"pattern": rf"(^|\.){name}$"}}},
                   "then": {"properties": {"init_args": {"$ref": f"{arguments}/{name}"}}}} for name in names]}


def _either_form(class_path: dict, own: dict) -> dict:
    return {"if": {"type": "object", "required": ["class_path"]}, "then": class_path, "else": own}


def section_defs(regs: dict[str, Registry]) -> dict:
    """`callbacks:` and `logger:`, which may also go under `trainer:` and be written as LightningCLI writes
    them (one item, or `{class_path, init_args}`): declarative.spec.lightning_forms reads those as dtrain's."""
    def items(kind: str, what: str) -> dict:
        item = _either_form(class_path_form(regs, kind, f"#/$defs/{kind}/else/properties"), _ref(kind))
        return {"description": what, "if": {"type": "array"}, "then": {"type": "array", "items": item},
                "else": item}

    callbacks = items("callback", "Callbacks, called in order (also accepted under trainer:, as Lightning's "
                                  "Trainer takes them).")
    loggers = items("logger", "true (TensorBoard and CSV), false, or loggers (also accepted under trainer:).")
    return {"callbacks": callbacks, "loggers": {"description": loggers.pop("description"), "if": {"type": "boolean"},
                                                "then": {}, "else": loggers}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


def _list_of(name: str) -> dict:
    return {"type": "array", "items": _ref(name)}


def _split_schema(what: str) -> dict:
    return {
        "description": f"Where the {what} split comes from: a seeded fraction of the training split, "
                       "a split the source has, or a source of its own.",
        "type": "object",
        "properties": {
            "fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                         "description": "Carve this fraction out of the training split (seeded)."},
            "split": {"type": "string", "description": "A split the source has, e.g. test."},
            "source": _ref("source"),
            "stratify": {"type": "boolean", "default": False,
                         "description": "With fraction: each class keeps its proportion (as sklearn's "
                                        "train_test_split(stratify=...))."},
            "order": {"enum": ["random", "last"], "default": "random",
                      "description": "With fraction: random, a seeded draw; last, the last samples in their "
                                     "order (a chronological split, e.g. of a time series)."},
        },
        "additionalProperties": False,
        # One place the split comes from; stratify only qualifies a fraction.
        "oneOf": [{"required": ["fraction"]}, {"required": ["split"]}, {"required": ["source"]}],
        "dependentRequired": {"stratify": ["fraction"], "order": ["fraction"]},
    }


def model_schema() -> dict:
    """model: input, reusable blocks, layers."""
    from declarative.registry import REFERENCE_REF, accept_reference
    from declarative.model.syntax import BLOCK_NAME, NAME_PATTERN

    return {
        "type": "object",
        "required": ["layers"],
        "additionalProperties": False,
        "properties": {
            "input": {
                "description": "Shape of one sample, without the batch dim, e.g. [1, 28, 28]; auto (the default): "
                               "the data's.",
                "default": "auto",
                "if": {"type": "string"},
                "then": {"anyOf": [{"enum": ["auto"]}, REFERENCE_REF]},
                "else": {"type": "array", "minItems": 1, "items": accept_reference({"type": "integer", "minimum": 1})},
            },
            "blocks": {
                "description": "Reusable blocks: a name, its params with defaults (null: must be given) and "
                               "layers that use them as ${param}. A block is then used as a layer by its name.",
                "type": "object",
                "propertyNames": {"pattern": BLOCK_NAME},
                "additionalProperties": {
                    "type": "object",
                    "required": ["layers"],
                    "additionalProperties": False,
                    "properties": {
                        "params": {"type": ["object", "null"], "propertyNames": {"pattern": NAME_PATTERN},
                                   "description": "Parameter names and their defaults; null: no default."},
                        "layers": _ref("layer_list"),
                    },
                },
            },
            "layers": _ref("layer_list"),
            "init": {"description": "Initializers per layer type, e.g. {Linear: {weight: xavier_uniform_, "
                                    "bias: zeros_}}: every layer of that type in the model, before the items' own.",
                     "type": "object", "propertyNames": {"pattern": BLOCK_NAME},
                     "additionalProperties": _init_table("Parameter name → torch.nn.init initializer.")},
            "init_from": {
                "description": "Warm start: weights loaded into the model before training, from a dtrain checkpoint "
                               "or run folder (RUN/best, RUN/last), a .pt/.pth state dict, or a .safetensors file "
                               "(with the safetensors package). A path, relative to the spec's folder, or "
                               "{path, strict, prefix}.",
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "object", "required": ["path"], "additionalProperties": False, "properties": {
                        "path": {"type": "string", "minLength": 1},
                        "strict": {"type": "boolean", "default": True,
                                   "description": "Every tensor of the model must be in the file and every tensor "
                                                  "of the file in the model; false: load those that match."},
                        "prefix": {"type": "object", "propertyNames": {"type": "string"},
                                   "additionalProperties": {"type": "string"},
                                   "description": "Key prefixes of the file renamed to the model's, e.g. "
                                                  "{'backbone.': 'layers.0.'}; the first that matches applies."},
                    }},
                ],
            },
        },
    }


def _init_table(what: str) -> dict:
    return {"description": what, "type": "object", "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
            "additionalProperties": _ref("initializer")}


def item_settings_schema() -> dict:
    """Keys beside a layer item that set up its parameters."""
    return {
        "trainable": {"type": "boolean", "default": True,
                      "description": "false: freeze every parameter inside (requires_grad off)."},
        "train_bn": {"type": "boolean", "default": True,
                     "description": "false: BatchNorm layers inside run in eval mode, keeping their statistics."},
        "init": _init_table("torch.nn.init initializers by parameter name, e.g. {weight: xavier_uniform_, "
                            "bias: zeros_}, for the parameters of that name inside this item."),
    }


# What an editor shows for a name that is neither a layer nor a possible block (yaml-language-server reads it).
BLOCK_REFERENCE_MESSAGE = ("not a layer: layer names are case-sensitive (ReLU, Conv2d, resnet18) — `dtrain layers` "
                           "lists them; any other CamelCase name must be a block of model.blocks")


def layer_item_schema(layers: Registry) -> dict:
    """A layer item: a layer name, or one layer (or block, or construct) with its arguments and the
    wiring keys name / input / output beside it. Any CamelCase name may be a block the spec defines;
    `dtrain validate` narrows that to the spec's own blocks (model.syntax.specialise)."""
    from declarative.model.syntax import NAME_PATTERN, block_reference_pattern

    item = layers.item_schema()
    name = {"type": "string", "pattern": NAME_PATTERN}
    block = block_reference_pattern(sorted({*item["then"]["enum"], *item["else"]["properties"]}))
    item["then"] = {"anyOf": [item["then"], {"type": "string", "pattern": block,
                                             "patternErrorMessage": BLOCK_REFERENCE_MESSAGE}]}
    item["else"].pop("maxProperties")
    item["else"]["properties"].update({
        "name": {**name, "description": "Name this layer's output, for the `input` of later layers in the list."},
        "input": {"description": "The named outputs this layer reads, instead of the previous layer's.",
                  "anyOf": [name, {"type": "array", "items": name, "minItems": 1}]},
        "output": {"description": "For a layer that returns a tuple: the element to keep (a list: nested).",
                   "anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}, "minItems": 1}]},
    })
    item["else"]["properties"].update(item_settings_schema())
    item["else"]["patternProperties"] = {block: {"type": ["object", "null"],
                                                 "propertyNames": {"pattern": NAME_PATTERN}}}
    return item


def _names(what: str) -> dict:
    one = {"type": "string", "minLength": 1}
    return {"description": what, "anyOf": [one, {"type": "array", "items": one, "minItems": 1}]}


PARAM_GROUPS = {
    "description": "Parameter groups, each with its own optimizer arguments (lr, weight_decay, ...); the "
                   "parameters no group selects keep the optimizer's own arguments.",
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["params"],
        "properties": {
            "params": {
                "description": "Which parameters: any that one of these keys matches.",
                "type": "object",
                "minProperties": 1,
                "additionalProperties": False,
                "properties": {
                    "names": _names("Globs over parameter or module names, e.g. layers.0.*, *.bias, layers.3."),
                    "layers": _names("Layer items named with `name:`."),
                    "type": _names("Layer class names, e.g. BatchNorm2d, LayerNorm: the parameters they hold."),
                    "bias": {"type": "boolean", "description": "true: every parameter named bias."},
                },
            },
        },
        # the other keys are arguments of the optimizer named beside: checked against it when the run builds it
        "propertyNames": {"pattern": "^[a-z_][a-z0-9_]*$"},
        "additionalProperties": {"description": "An argument of the optimizer, for this group."},
    },
}


def optimizer_schema(optimizers: Registry) -> dict:
    """One optimizer by name, with optional `param_groups` beside it."""
    item = optimizers.item_schema()
    item["else"].pop("maxProperties")
    item["else"]["properties"]["param_groups"] = PARAM_GROUPS
    return item


def spec_schema() -> dict[str, Any]:
    import torch
    import torchvision

    from declarative.registry import REFERENCE
    from declarative.spec.safety import MAX_RUN_NAME, RUN_NAME_PATTERN
    from declarative.training.tasks import TASKS

    regs = registries()
    scheduler_entries = regs["scheduler"].item_schema()["else"]["properties"]
    return {
        "$schema": SCHEMA_URI,
        "title": "dtrain spec",
        "description": "One experiment: data, model, loss, optimizer, scheduler, trainer, callbacks, loggers.",
        "$comment": f"Generated by `dtrain schema` from torch {torch.__version__.split('+')[0]} "
                    f"and torchvision {torchvision.__version__.split('+')[0]}.",
        "type": "object",
        "required": ["data", "model", "optimizer"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": RUN_NAME_PATTERN, "maxLength": MAX_RUN_NAME,
                     "description": "The run's name: runs go to runs/<name>/version_<N>/. Default: the file name."},
            "description": {"type": "string", "description": "Free text kept with the run."},
            "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1,
                     "description": "Seeds torch and the data splits; without one, a drawn seed is recorded."},
            "data": {
                "type": "object",
                "required": ["source"],
                "additionalProperties": False,
                "properties": {
                    "source": _ref("source"),
                    "val": _split_schema("validation"),
                    "test": _split_schema("test"),
                    "transforms": {**_list_of("transform"),
                                   "description": "torchvision.transforms.v2 pipeline for every split."},
                    "train_transforms": {**_list_of("transform"),
                                         "description": "Augmentation for the training split only, run before "
                                                        "`transforms`; random ones draw per sample."},
                    "batch_transforms": {**_list_of("batch_transform"),
                                         "description": "MixUp / CutMix (or a RandomChoice of them) on training "
                                                        "batches, after every other transform; the targets become "
                                                        "class probabilities."},
                    "eval_transforms": {**_list_of("transform"),
                                        "description": "For the val and test splits only, run before `transforms` "
                                                       "(e.g. Resize 256 + CenterCrop 224)."},
                    "targets": {"enum": ["targets", "inputs"], "default": "targets",
                                "description": "inputs: each sample is its own target (an autoencoder), as "
                                               "`transforms` make it, without their random ones (noise)."},
                    "batch_size": {"type": "integer", "minimum": 1, "default": 32},
                    "eval_batch_size": {"type": "integer", "minimum": 1,
                                        "description": "Batch size of the val and test splits (default: batch_size)."},
                    "loader": {"enum": ["auto", "memory", "dataloader"], "default": "auto",
                               "description": "memory: tensors on the training device, batched by index "
                                              "slicing; dataloader: a torch DataLoader; auto: memory when "
                                              "the data fits."},
                    "num_workers": {"type": "integer", "minimum": 0,
                                    "description": "DataLoader worker processes (default: chosen from the CPUs)."},
                    "pin_memory": {"type": "boolean",
                                   "description": "DataLoader pinned memory (default: when training on CUDA)."},
                    "persistent_workers": {"type": "boolean",
                                           "description": "Keep DataLoader workers between epochs "
                                                          "(default: when there are workers)."},
                    "drop_last": {"type": "boolean", "default": False,
                                  "description": "Drop the training split's last batch when it is short "
                                                 "(as DataLoader's drop_last); validation and test keep every sample."},
                    "check_finite": {"type": "boolean", "default": True,
                                     "description": "Stop before training when the data holds a NaN or an infinite "
                                                    "value; false trains on it anyway."},
                },
            },
            "model": model_schema(),
            "task": {"enum": list(TASKS),
                     "description": "What the targets are (torchmetrics' task names); sets the default loss and "
                                    "metrics. Default: inferred from the loss, else from the data."},
            "loss": {**_ref("loss"), "description": "A torch.nn loss. Default: the task's (CrossEntropyLoss, "
                                                    "BCEWithLogitsLoss or MSELoss)."},
            "metrics": {**_list_of("metric"), "description": "Metrics logged per stage as <stage>/<name>. "
                                                             "Default: the task's."},
            "optimizer": _either_form(class_path_form(regs, "optimizer", "#/$defs/optimizer/else/properties"),
                                      _ref("optimizer")),
            "scheduler": {
                "description": "One LR scheduler by name, and Lightning's interval / frequency / monitor.",
                "type": "object",
                "x-registry": regs["scheduler"].kind,
                "x-excluded": dict(sorted(regs["scheduler"].excluded.items())),
                "properties": {
                    **scheduler_entries,
                    "interval": {"enum": ["epoch", "step"], "default": "epoch"},
                    "frequency": {"type": "integer", "minimum": 1, "default": 1},
                    "monitor": {"type": "string", "default": "val/loss",
                                "description": "The metric ReduceLROnPlateau reads."},
                },
                "additionalProperties": False,
            },
            "lr_scheduler": {"description": "LightningCLI's name for scheduler.",
                             **class_path_form(regs, "scheduler", "#/properties/scheduler/properties")},
            "seed_everything": {"description": "LightningCLI's name for seed (true/false: a drawn seed, recorded).",
                                "anyOf": [{"type": "boolean"}, {"type": "integer", "minimum": 0,
                                                                "maximum": 2**32 - 1}]},
            "ckpt_path": {"type": "null", "description": "LightningCLI's; a spec does not resume: `dtrain resume`."},
            "trainer": trainer_schema(),
            "callbacks": _ref("callbacks"),
            "logger": _ref("loggers"),
        },
        "$defs": {**{key: registry.item_schema() for key, registry in regs.items()},
                  "optimizer": optimizer_schema(regs["optimizer"]), "layer": layer_item_schema(regs["layer"]), "layer_list": {**_list_of("layer"), "minItems": 1},
                  "reference": REFERENCE, **section_defs(regs)},
    }


def schema_text() -> str:
    """The schema exactly as committed: sorted-free, two-space indented, newline-terminated."""
    return json.dumps(spec_schema(), indent=2, ensure_ascii=False) + "\n"
