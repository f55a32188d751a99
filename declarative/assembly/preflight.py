"""Checks of a run's length and batches against its model and scheduler, before any training.

Each finds, from the spec, the model plan and the data, a run that would fail partway with an
error from torch, and says so at the spec line to change:

- OneCycleLR told fewer `total_steps` (or `epochs` × `steps_per_epoch`) than the run steps it:
  torch raises at the step past the end, mid-run.
- A BatchNorm layer that sees one value per channel in a training batch of one sample (the last,
  short batch): torch raises "Expected more than 1 value per channel when training".
- `drop_last: true` with fewer training samples than a batch: no training batch at all.
"""

from __future__ import annotations

import math

from torch import nn

__all__ = ["check_before_training"]


def check_before_training(spec, plan, data) -> None:
    """Raise a located SpecError for a run that would fail partway (see the module's docstring)."""
    num_train_batches = spec.trainer.settings().limit("train", len(data.train))
    _check_drop_last(spec, data.train.num_samples)
    _check_batch_norm(spec, plan, data.train.num_samples, reaches_last=num_train_batches == len(data.train))
    _check_one_cycle(spec, num_train_batches)


def _check_drop_last(spec, samples: int) -> None:
    if spec.data.drop_last and samples < spec.data.batch_size:
        raise spec.error(("data", "drop_last"), f"drop_last leaves no training batch: the training split has "
                                                f"{samples} samples, fewer than batch_size {spec.data.batch_size} "
                                                f"— lower batch_size, or remove drop_last", key=True)


def _batch_norms(plan) -> list[str]:
    """The dotted names of the plan's BatchNorm layers that see one value per channel per sample."""
    from declarative.model.layers import LAYERS

    names = []
    for top in plan.nodes:
        for _, node in top.walk():
            factory = LAYERS[node.component.name].factory if node.component.name in LAYERS else None
            if isinstance(factory, type) and issubclass(factory, nn.modules.batchnorm._BatchNorm) \
                    and math.prod(node.output_shape[1:]) == 1:
                names.append(f"{node.name} ({node.component.name})")
    return names


def _check_batch_norm(spec, plan, samples: int, *, reaches_last: bool) -> None:
    size = spec.data.batch_size
    if spec.data.drop_last or not reaches_last or samples % size != 1:
        return
    layers = _batch_norms(plan)
    if not layers:
        return
    better = next((b for b in range(size + 1, 2 * size + 2) if samples % b != 1), size + 1)
    raise spec.error(("data", "batch_size"), f"the training split's {samples} samples leave a last batch of one "
                                             f"sample at batch_size {size}, on which layer {layers[0]} cannot train "
                                             f"(one value per channel) — set data.drop_last: true, or batch_size: "
                                             f"{better}")


def _check_one_cycle(spec, num_train_batches: int) -> None:
    config = spec.scheduler
    if config is None or config.scheduler.name != "OneCycleLR":
        return
    from declarative.run import _scheduler_steps

    kwargs = config.scheduler.kwargs
    if "total_steps" in kwargs:
        given, path, how = kwargs["total_steps"], "total_steps", f"total_steps is {kwargs['total_steps']}"
    elif "epochs" in kwargs and "steps_per_epoch" in kwargs:
        given, path = kwargs["epochs"] * kwargs["steps_per_epoch"], "epochs"
        how = f"epochs × steps_per_epoch is {kwargs['epochs']} × {kwargs['steps_per_epoch']} = {given}"
    else:
        return  # dtrain fills total_steps in from the run's length
    needed = _scheduler_steps(spec, num_train_batches)
    if given is not None and given < needed:
        raise spec.error(("scheduler", "OneCycleLR", path),
                         f"OneCycleLR's {how}, but the run steps it {needed} times ({config.interval} interval) — "
                         f"leave total_steps out (dtrain fills it in from the run's length), or give at least {needed}")
