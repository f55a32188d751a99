"""LightningCLI's ways of writing the trainer, optimizer and scheduler sections, read as dtrain's.

A Lightning user hands callbacks and loggers to the Trainer, so a LightningCLI config has them
under `trainer:`, each as `{class_path: ..., init_args: {...}}`, and may give one logger or one
callback without a list; its optimizer and `lr_scheduler` are class_path items too, and its seed
is `seed_everything`; `--print_config` writes every Trainer argument out, unset ones as null:

    trainer:
      logger: {class_path: lightning.pytorch.loggers.CSVLogger, init_args: {name: mnist}}
      callbacks:
        - class_path: lightning.pytorch.callbacks.EarlyStopping
          init_args: {monitor: val/loss, patience: 3}

dtrain's own form is the top-level `callbacks:` / `logger:` lists of `{Name: {args}}`, `optimizer:
{Adam: {...}}`, `scheduler:` and `seed:`. This module rewrites the first into the second before any
check, carrying every position along, so errors still point at the line the user wrote. A class_path names a registry entry by its class
name (the part after the last dot); nothing is imported, whatever the module part says.
"""

from __future__ import annotations

from typing import Any

from declarative.errors import Problem
from declarative.spec.document import Document, PathKey

__all__ = ["read_lightning_forms"]

SECTIONS = ("callbacks", "logger")
# LightningCLI's top-level names → dtrain's.
RENAMED = {"seed_everything": "seed", "lr_scheduler": "scheduler"}


def read_lightning_forms(doc: Document) -> list[Problem]:
    """Rewrite `doc` in place into dtrain's form; the problems that stop it (a section given twice)."""
    data = doc.data
    if not isinstance(data, dict):
        return []
    problems = []
    for lightning, ours in RENAMED.items():
        if lightning in data:
            if ours in data:
                problems.append(doc.problem((lightning,), f"{lightning} and {ours} are the same setting — keep one of "
                                                          "them", key=True))
                continue
            data[ours] = data.pop(lightning)
            _move(doc, (lightning,), (ours,))
    if isinstance(data.get("seed"), bool):  # seed_everything: true/false — dtrain draws a seed and records it
        del data["seed"]
    if "ckpt_path" in data:
        if data["ckpt_path"] is not None:
            problems.append(doc.problem(("ckpt_path",), "a spec does not resume: `dtrain resume RUN_FOLDER` (or "
                                                        "`dtrain run SPEC --resume CKPT`) goes on from a checkpoint"))
        del data["ckpt_path"]
    for section in ("optimizer", "scheduler"):
        if isinstance(data.get(section), dict) and "class_path" in data[section]:
            data[section] = _from_class_path(doc, (section,), data[section])
    _plateau_monitor(doc, data.get("scheduler"))
    trainer = data.get("trainer")
    for section in SECTIONS:
        if isinstance(trainer, dict) and section in trainer:
            if section in data:
                problems.append(doc.problem(("trainer", section), f"{section} is given twice, under trainer and at "
                                                                  f"the top level — keep one of them", key=True))
                continue
            data[section] = trainer.pop(section)
            _move(doc, ("trainer", section), (section,))
        value = data.get(section)
        if isinstance(value, dict):  # one callback or logger, without a list (Lightning takes that too)
            data[section] = [value]
            _move(doc, (section,), (section, 0))
        if isinstance(data.get(section), list):
            for index, item in enumerate(data[section]):
                if isinstance(item, dict) and "class_path" in item:
                    data[section][index] = _from_class_path(doc, (section, index), item)
        if section in data and data[section] is None:  # Lightning's None: the default (dtrain's too)
            del data[section]
    if isinstance(trainer, dict):
        problems += _trainer_defaults(doc, trainer)
    return problems


# Trainer arguments dtrain leaves out, the value that means "as Lightning's default" (which a LightningCLI
# `--print_config` writes out), and why any other value cannot be honoured.
LEFT_OUT = {
    "use_distributed_sampler": (True, "dtrain always shards its batches as DistributedSampler does; there is no "
                                      "sampler of the user's to keep"),
    "barebones": (False, "dtrain's loop has no per-step overhead to switch off"),
    "plugins": (None, "plugins are Python objects: name the accelerator, strategy and precision instead"),
    "reload_dataloaders_every_n_epochs": (0, "a spec's data is fixed for the run: nothing to reload"),
    "model_registry": (None, "dtrain uploads nothing to a model hub"),
}
# Trainer arguments whose null means something else than their default.
NULL_MEANS_SOMETHING = ("check_val_every_n_epoch",)


def _trainer_defaults(doc: Document, trainer: dict[str, Any]) -> list[Problem]:
    """Lightning's `null` (its default) dropped, and the arguments dtrain leaves out taken at their default
    values; another value of those is a problem that says why."""
    problems = []
    for key, value in list(trainer.items()):
        if key in LEFT_OUT:
            default, why = LEFT_OUT[key]
            if value != default or type(value) is not type(default):
                problems.append(doc.problem(("trainer", key), f"{key}: {value!r} is not supported — {why} (leave it "
                                                              f"out, or {default!r} as Lightning's default)"))
            del trainer[key]  # reported once, here, not again as an unknown key
        elif value is None and key not in NULL_MEANS_SOMETHING:
            del trainer[key]
    return problems


def _from_class_path(doc: Document, path: PathKey, item: dict[str, Any]) -> Any:
    """`{class_path: a.b.Name, init_args: {...}}` → `{Name: {...}}`, positions carried over; an item with
    other keys, or a class_path that is not a string, is left for the schema to report."""
    class_path = item.get("class_path")
    if set(item) - {"class_path", "init_args"} or not isinstance(class_path, str) or not class_path.strip():
        return item
    name = class_path.strip().rsplit(".", 1)[-1]
    _move(doc, path + ("init_args",), path + (name,))
    if path + (name,) not in doc.positions:
        doc.positions[path + (name,)] = doc.locate(path + ("class_path",))
    doc.key_positions[path + (name,)] = doc.locate(path + ("class_path",))
    if path[0] in ("optimizer", "scheduler"):  # one-key mappings, never a bare name
        return {name: item.get("init_args") or {}}
    return {name: item["init_args"]} if item.get("init_args") else name


def _plateau_monitor(doc: Document, scheduler: Any) -> None:
    """LightningCLI's ReduceLROnPlateau takes `monitor` among its init_args; dtrain's scheduler has it beside."""
    if not isinstance(scheduler, dict) or not isinstance(scheduler.get("ReduceLROnPlateau"), dict):
        return
    arguments = scheduler["ReduceLROnPlateau"]
    if "monitor" in arguments and "monitor" not in scheduler:
        scheduler["monitor"] = arguments.pop("monitor")
        _move(doc, ("scheduler", "ReduceLROnPlateau", "monitor"), ("scheduler", "monitor"))


def _move(doc: Document, old: PathKey, new: PathKey) -> None:
    """Positions recorded under `old` (and below it) now belong to `new`."""
    for table in (doc.positions, doc.key_positions):
        for path in [p for p in table if p[:len(old)] == old]:
            table[new + path[len(old):]] = table.pop(path)
