"""BatchSizeFinder: Lightning's search for the largest training batch size that fits in memory.

    callbacks:
      - BatchSizeFinder                            # 2, 4, 8, ... until out of memory
      - BatchSizeFinder: {mode: binsearch, steps_per_trial: 1}

Before the fit, the model trains `steps_per_trial` steps at each batch size tried: doubling from `init_val`
until a trial runs out of memory, or the batch size reaches the training split's size, `max_val` or
`max_trials` ("binsearch" then halves the gap between the last size that fitted and the first that did not).
Weights, optimizer and generators go back to what they were, and the run trains with the size found: it
becomes the data section's `batch_size`. This module holds the callback's settings and the search;
declarative/assembly/tuning.py runs the trials.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

from declarative.callbacks.base import Callback

__all__ = ["BatchSizeFinder", "search_batch_size"]


class BatchSizeFinder(Callback):
    """Find the largest training batch size that does not run out of memory, and train with it.

    Args:
        mode: ``power`` doubles the batch size until a trial runs out of memory and keeps the last size
            that fitted; ``binsearch`` then searches between that size and the one that failed.
            Default: power
        steps_per_trial: Training steps run at each batch size tried. Default: 3
        init_val: The first batch size tried. Default: 2
        max_trials: The most batch sizes tried (each increase is one). Default: 25
        batch_arg_name: What the size found sets: the data section's ``batch_size`` (validation and test
            batches too, unless ``eval_batch_size`` is set). Default: batch_size
        margin: With ``binsearch``, the size found is lowered by this fraction, to leave room for
            allocations the trials did not make. Default: 0.05
        max_val: The largest batch size the search reaches. Default: 8192
    """

    def __init__(self, mode: Literal["power", "binsearch"] = "power", steps_per_trial: int = 3, init_val: int = 2,
                 max_trials: int = 25, batch_arg_name: Literal["batch_size"] = "batch_size", margin: float = 0.05,
                 max_val: int = 8192):
        mode = mode.lower()
        if mode not in ("power", "binsearch"):
            raise ValueError(f"mode should be either of ('power', 'binsearch'), but got mode={mode!r}")
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"margin should be between 0 and 1, but got margin={margin}")
        self.mode = mode
        self.steps_per_trial = steps_per_trial
        self.init_val = init_val
        self.max_trials = max_trials
        self.batch_arg_name = batch_arg_name
        self.margin = margin
        self.max_val = max_val
        self.optimal_batch_size: int | None = init_val  # Lightning's attribute: the size found, once found
        self.trials: list[tuple[int, bool]] = []  # each size tried and whether it fitted
        self.result: dict[str, Any] = {}  # results.json's "tuned" → "batch_size"

    def state_dict(self) -> dict:
        return {"result": dict(self.result)} if self.result else {}

    def load_state_dict(self, state_dict: dict) -> None:
        self.result = dict(state_dict.get("result", {}))


def search_batch_size(finder: BatchSizeFinder, current: int, num_samples: int,
                      fits: Callable[[int], bool]) -> int:
    """The batch size Lightning's search settles on; `fits(size)` runs one trial (False: out of memory).

    As Lightning's, a size is not raised once it is at least the training split's `num_samples` (so the
    last size tried may exceed the split, whose one batch then holds every sample). Unlike Lightning's, that
    rule does not stop a size from being lowered (Lightning's search keeps trying a size above the split
    that does not fit, and starts from the spec's batch size instead of `init_val` when it is above the
    split), and an increase is capped at `max_val` in power mode too, so the size found never exceeds it.
    """

    def adjust(size: int, *, factor: float = 1.0, value: int | None = None) -> tuple[int, bool]:
        new = min(value if value is not None else int(size * factor), finder.max_val)
        if size >= num_samples and new > size:  # the split is one batch already
            return size, False
        return new, new != size

    def trial(size: int) -> bool:
        if size < 1:
            raise MemoryError("even a batch of one sample runs out of memory")
        ok = fits(size)
        finder.trials.append((size, ok))
        return ok

    size, _ = adjust(current, value=finder.init_val)
    if finder.mode == "power":
        any_success = False
        for attempt in range(finder.max_trials):
            if size >= finder.max_val:
                break
            if trial(size):
                if attempt + 1 >= finder.max_trials:
                    break
                size, changed = adjust(size, factor=2.0)
                if not changed:
                    break
                any_success = True
            else:
                size, _ = adjust(size, factor=0.5)
                if any_success:
                    break
        return size
    low, high, count = 1, None, 0
    while size < finder.max_val:
        if trial(size):
            count += 1
            if count >= finder.max_trials:
                break
            low = size
            if high:
                if high - low <= 1:
                    break
                size, changed = adjust(size, value=(high + low) // 2)
            else:
                size, changed = adjust(size, factor=2.0)
            if not changed:
                break
        else:
            high = size
            size, _ = adjust(size, value=(high + low) // 2)
            if high - low <= 1:
                break
    if finder.margin > 0:
        size = max(1, int(size * (1 - finder.margin)))
    return size
