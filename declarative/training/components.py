"""Losses, optimizers and LR schedulers, by their torch names and keyword arguments."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.optim import lr_scheduler

from declarative.registry import Registry
from declarative.assembly.schedulers import chain_entries

LOSSES = Registry("loss", list_command="dtrain layers --kind loss")
OPTIMIZERS = Registry("optimizer", list_command="dtrain layers --kind optimizer")
SCHEDULERS = Registry("LR scheduler", list_command="dtrain layers --kind scheduler")

_NON_NEGATIVE = {"minimum": 0}

for _name in sorted(dir(nn)):
    _cls = getattr(nn, _name)
    if isinstance(_cls, type) and issubclass(_cls, nn.Module) and _name.endswith("Loss") and _name != "AdaptiveLogSoftmaxWithLoss":
        # size_average / reduce are deprecated spellings of `reduction`.
        LOSSES.add_class(_cls, skip={"size_average", "reduce", "device", "dtype"},
                         constraints={"label_smoothing": {"minimum": 0, "maximum": 1}})

_OPTIMIZER_BOUNDS = {
    "lr": _NON_NEGATIVE, "momentum": _NON_NEGATIVE, "weight_decay": _NON_NEGATIVE, "eps": _NON_NEGATIVE,
    "betas": {"minimum": 0, "exclusiveMaximum": 1}, "rho": {"minimum": 0, "maximum": 1},
    "alpha": _NON_NEGATIVE, "dampening": _NON_NEGATIVE,
}
for _name in sorted(dir(torch.optim)):
    _cls = getattr(torch.optim, _name)
    if isinstance(_cls, type) and issubclass(_cls, torch.optim.Optimizer) and _cls is not torch.optim.Optimizer:
        OPTIMIZERS.add_class(_cls, skip={"params"}, constraints=_OPTIMIZER_BOUNDS)

# Arguments dtrain derives from the trainer settings when the spec leaves them out, so that a
# schedule spans the run: T_max / total_steps follow max_epochs (or the steps, with interval: step).
SCHEDULER_INFERRED = {"T_max", "total_steps"}
_SCHEDULER_BOUNDS = {
    "step_size": {"minimum": 1}, "T_max": {"minimum": 1}, "total_steps": {"minimum": 1}, "T_0": {"minimum": 1},
    "gamma": {"exclusiveMinimum": 0}, "factor": {"minimum": 0, "exclusiveMaximum": 1}, "patience": _NON_NEGATIVE,
    "max_lr": _NON_NEGATIVE, "eta_min": _NON_NEGATIVE, "min_lr": _NON_NEGATIVE,
}
_SCHEDULER_EXCLUDED = {"LRScheduler", "_LRScheduler", "SequentialLR", "ChainedScheduler", "LambdaLR",
                       "MultiplicativeLR"}  # these take other schedulers or Python callables
for _name in sorted(dir(lr_scheduler)):
    _cls = getattr(lr_scheduler, _name)
    if (isinstance(_cls, type) and _name not in _SCHEDULER_EXCLUDED and not _name.startswith("_")
            and (issubclass(_cls, lr_scheduler.LRScheduler) or _cls is lr_scheduler.ReduceLROnPlateau)):
        # scale_fn (CyclicLR) is a Python callable: YAML cannot write one; its scale_mode names the built-in ones.
        SCHEDULERS.add_class(_cls, skip={"optimizer", "last_epoch", "verbose", "scale_fn"}, inferred=SCHEDULER_INFERRED,
                             constraints=_SCHEDULER_BOUNDS)
_FUNCTION = ("takes a Python function ({}), which a spec cannot hold — write the schedule with LinearLR, "
             "ExponentialLR, PolynomialLR or a SequentialLR / ChainedScheduler chain")
SCHEDULERS.exclude("LambdaLR", _FUNCTION.format("lr_lambda"))
SCHEDULERS.exclude("MultiplicativeLR", _FUNCTION.format("lr_lambda"))
SCHEDULERS.exclude("LRScheduler", "it is the base class of the schedulers, not a schedule")
LOSSES.exclude("AdaptiveLogSoftmaxWithLoss", "it is a layer with parameters that returns its loss, not a loss of "
                                             "outputs and targets")
for _entry in chain_entries():  # SequentialLR and ChainedScheduler, with their sub-schedulers in YAML
    SCHEDULERS.add(_entry)
