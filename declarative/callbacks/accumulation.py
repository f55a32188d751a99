"""GradientAccumulationScheduler: change how many batches each optimizer step accumulates, per epoch."""

from __future__ import annotations

from typing import Any

from declarative.callbacks.base import Callback
from declarative.training.errors import MisconfigurationError

__all__ = ["GradientAccumulationScheduler"]


class GradientAccumulationScheduler(Callback):
    """Change the gradient accumulation factor by epoch, as Lightning's GradientAccumulationScheduler.

    ``{0: 8, 4: 4, 8: 1}`` accumulates 8 batches per optimizer step in epochs 0-3, 4 in epochs 4-7 and
    1 from epoch 8 on. Epochs are 0-based; without a 0 key, epochs before the first key accumulate 1.
    The last batch of an epoch always steps, whatever is left to accumulate.

    Args:
        scheduling: ``{epoch: accumulation_factor}``.
    """

    def __init__(self, scheduling: dict[int, int]):
        if not scheduling:
            raise ValueError("scheduling is empty — give {epoch: accumulation_factor}, e.g. {0: 8, 4: 4}")
        scheduling = {_integer(key, "epoch"): value for key, value in scheduling.items()}
        if any(key < 0 for key in scheduling):
            raise ValueError(f"Epoch should be an int greater than or equal to 0. Got {sorted(scheduling)}.")
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in scheduling.values()):
            raise ValueError(f"Accumulation factor should be an int greater than 0. Got {list(scheduling.values())}.")
        self.scheduling = {0: 1, **scheduling}  # Lightning's: epochs before the first key accumulate 1
        self.epochs = sorted(self.scheduling)

    def going_to_accumulate_grad_batches(self) -> bool:
        return any(value > 1 for value in self.scheduling.values())

    def get_accumulate_grad_batches(self, epoch: int) -> int:
        """The factor of `epoch`: that of the latest key at or before it."""
        return self.scheduling[max(key for key in self.epochs if key <= epoch)]

    def setup(self, trainer: Any, model: Any, stage: str) -> None:
        if stage == "fit" and trainer.settings.accumulate_grad_batches != 1:
            raise MisconfigurationError(
                f"trainer.accumulate_grad_batches is {trainer.settings.accumulate_grad_batches} and callbacks has a "
                "GradientAccumulationScheduler — remove one of them (the scheduler's {0: N} sets the first epochs')",
                ("trainer", "accumulate_grad_batches"))

    def on_train_start(self, trainer: Any, model: Any) -> None:
        # A resumed epoch does not run its start hooks again: its factor comes from here (the epoch decides it).
        trainer.accumulate_grad_batches = self.get_accumulate_grad_batches(trainer.current_epoch)

    def on_train_epoch_start(self, trainer: Any, model: Any) -> None:
        trainer.accumulate_grad_batches = self.get_accumulate_grad_batches(trainer.current_epoch)


def _integer(key: Any, what: str) -> int:
    """A schedule key: YAML gives `0:` as an int, JSON (and a quoted key) as a string."""
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    if isinstance(key, str) and key.strip().lstrip("-").isdigit():
        return int(key)
    raise ValueError(f"{what} keys must be integers, got {key!r}")
