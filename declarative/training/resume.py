"""What an exact resume needs besides the weights: every random generator's state, each process's.

A checkpoint written at a step boundary holds, per process, the states of Python's, NumPy's and
torch's generators (the CPU's and every CUDA device's), the training batches' position and their
augmentation generator, and the partial epoch's metric sums. Restored at the same boundary, the
run draws the very numbers a run that never stopped draws: same dropout masks, same augmentations,
same batches. Everything is kept as tensors, numbers and lists, so `torch.load(weights_only=True)`
reads it.
"""

from __future__ import annotations

import random
from typing import Any

import torch

__all__ = ["rng_state", "load_rng_state", "gather_objects"]


def rng_state() -> dict[str, Any]:
    """The state of every global generator of this process, as plain data."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "torch": torch.get_rng_state(),
    }
    try:
        import numpy as np

        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                          "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    except ImportError:
        pass
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def load_rng_state(state: dict[str, Any]) -> None:
    """Set every global generator to what `rng_state` returned."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss"]))
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        import numpy as np

        saved = state["numpy"]
        np.random.set_state((saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["pos"], saved["has_gauss"],
                             saved["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        for device in range(min(len(states), torch.cuda.device_count())):
            torch.cuda.set_rng_state(states[device], device)


def gather_objects(obj: Any, distributed: bool) -> list[Any]:
    """`obj` of every process, in rank order (every process must call it when `distributed`)."""
    if not distributed or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return [obj]
    gathered: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


def to_cpu(data: Any) -> Any:
    """Tensors of nested dicts and lists moved to the CPU (what a checkpoint holds)."""
    if isinstance(data, torch.Tensor):
        return data.detach().cpu()
    if isinstance(data, dict):
        return {key: to_cpu(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [to_cpu(value) for value in data]
    return data
