"""LR schedulers, chains included: torch's SequentialLR and ChainedScheduler with their sub-schedulers in YAML.

    scheduler:
      SequentialLR:
        schedulers:
          - LinearLR: {start_factor: 0.01, total_iters: 5}   # warm-up for 5 epochs
          - CosineAnnealingLR                               # T_max: the rest of the run
        # milestones: [5]   inferred: where each scheduler's own length (total_iters, T_max) ends
      interval: epoch

Arguments that only restate the run's length are inferred where left out: `T_max` / `total_steps` of a
scheduler span the steps it runs for (the whole run, or its stretch of a SequentialLR), and SequentialLR's
`milestones` follow the lengths of the schedulers before each one.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.optim import lr_scheduler

from declarative.registry import Entry, Param

__all__ = ["CHAINS", "build_scheduler", "chain_entries"]

CHAINS = ("SequentialLR", "ChainedScheduler")
_LENGTH = ("total_iters", "T_max", "total_steps")  # a scheduler's own length, where it has one


def chain_entries() -> list[Entry]:
    """Registry entries for the two chains; their sub-schedulers are scheduler items of the same schema."""
    items = {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/scheduler"},
             "description": "The schedulers, each written as the scheduler section writes one."}
    milestones = {"type": "array", "items": {"type": "integer", "minimum": 1},
                  "description": "Steps at which the next scheduler takes over; default: where each one's "
                                 "total_iters / T_max ends."}
    return [
        Entry("SequentialLR", lr_scheduler.SequentialLR,
              {"schedulers": Param("schedulers", {**items, "minItems": 2}, True),
               "milestones": Param("milestones", milestones, False)},
              "Run schedulers one after the other, switching at the milestones.", frozenset({"milestones"})),
        Entry("ChainedScheduler", lr_scheduler.ChainedScheduler,
              {"schedulers": Param("schedulers", items, True)},
              "Run schedulers together: each step multiplies their effects."),
    ]


def build_scheduler(component: Any, spec: Any, optimizer: torch.optim.Optimizer,
                    total_steps: Callable[[], int]) -> Any:
    """The scheduler a spec component names; `total_steps()` is how often it will step over the run,
    read only when an argument must be inferred."""
    from declarative.training.components import SCHEDULERS

    if component.name not in CHAINS:
        entry = SCHEDULERS[component.name] if component.name in SCHEDULERS else None
        missing = entry.inferred - set(component.kwargs) if entry is not None else set()
        inferred = {name: total_steps() for name in missing}
        return SCHEDULERS.build_component(component, spec, optimizer=optimizer, **inferred)
    from declarative.spec.config import Component

    where = component.path + (component.name,)
    parts = [Component.parse(item, where + ("schedulers", i))
             for i, item in enumerate(component.kwargs.get("schedulers") or [])]
    if component.name == "ChainedScheduler":
        built = [build_scheduler(part, spec, optimizer, total_steps) for part in parts]
        return _construct(component, spec, lambda: lr_scheduler.ChainedScheduler(built, optimizer=optimizer))
    milestones = component.kwargs.get("milestones")
    if milestones is None:
        milestones = _inferred_milestones(parts, spec, where)
    if len(milestones) != len(parts) - 1 or list(milestones) != sorted(milestones):
        raise spec.error(where + ("milestones",), f"{len(parts)} schedulers take {len(parts) - 1} increasing "
                                                  f"milestone(s), got {list(milestones)}")
    starts = [0, *milestones]
    built = []
    for i, part in enumerate(parts):
        end = starts[i + 1] if i + 1 < len(starts) else None
        span = (lambda s=starts[i], e=end: (e if e is not None else total_steps()) - s)
        built.append(build_scheduler(part, spec, optimizer, lambda f=span: max(1, f())))
    return _construct(component, spec, lambda: lr_scheduler.SequentialLR(optimizer, built, list(milestones)))


def _inferred_milestones(parts: list, spec: Any, where: tuple) -> list[int]:
    """Each milestone is where the schedulers before it have run their own lengths."""
    from declarative.training.components import SCHEDULERS

    milestones, at = [], 0
    for part in parts[:-1]:
        entry = SCHEDULERS[part.name] if part.name in SCHEDULERS else None
        lengths = [part.kwargs.get(k, entry.params[k].schema.get("default") if entry and k in entry.params else None)
                   for k in _LENGTH]
        length = next((n for n in lengths if isinstance(n, int)), None)
        if length is None:
            raise spec.error(part.path, f"the milestones cannot be inferred: {part.name} has no length of its own "
                             f"(total_iters or T_max) — give it one, or write milestones")
        at += length
        milestones.append(at)
    return milestones


def _construct(component: Any, spec: Any, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except (TypeError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise spec.error(component.path, f"{component.name} cannot be built: {reason}") from None
