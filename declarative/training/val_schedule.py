"""When fit validates: Lightning's `val_check_interval` and `check_val_every_n_epoch`.

    val_check_interval: 0.25             validate after each quarter of the epoch's training batches
    val_check_interval: 100              validate every 100 training batches of an epoch
    check_val_every_n_epoch: null        ... counted across epochs (then an int may exceed an epoch)

As in Lightning, the count is of training batches (not optimizer steps), and a validation falls after
batch `b` when `b + 1` is a multiple of the interval: with a fraction that does not divide the epoch
(0.3 of 10 batches: every 3), the last validation comes before the epoch's end, and none at its end.
"""

from __future__ import annotations

from dataclasses import dataclass

from declarative.training.errors import MisconfigurationError
from declarative.training.settings import TrainerSettings

__all__ = ["ValidationSchedule"]


@dataclass(frozen=True)
class ValidationSchedule:
    every_n_epochs: int | None  # None: every epoch may validate; the batch count runs across epochs
    check_batch: int  # training batches between validations (Lightning's val_check_batch)
    num_train_batches: int  # training batches per epoch

    @classmethod
    def create(cls, settings: TrainerSettings, num_train_batches: int) -> "ValidationSchedule":
        """The schedule for epochs of `num_train_batches`; a located error for an interval that cannot be."""
        interval = settings.val_check_interval
        if settings.fast_dev_batches:  # as Lightning: a fast_dev_run validates once, at the epoch's end
            interval = 1.0
        where = ("trainer", "val_check_interval")
        if isinstance(interval, bool) or interval <= 0:
            raise MisconfigurationError(f"val_check_interval={interval} validates never — give a count of training "
                                        "batches (int >= 1) or a fraction of the epoch in (0, 1]; limit_val_batches: "
                                        "0 turns validation off", where)
        if isinstance(interval, int):
            if 0 < num_train_batches < interval and settings.check_val_every_n_epoch is not None:
                raise MisconfigurationError(
                    f"val_check_interval={interval} is more than the {num_train_batches} training batches of an "
                    f"epoch — give at most {num_train_batches}, a fraction such as 0.25, or "
                    "check_val_every_n_epoch: null to count batches across epochs", where)
            return cls(settings.check_val_every_n_epoch, interval, num_train_batches)
        if interval > 1.0:
            raise MisconfigurationError(f"val_check_interval={interval} is a fraction above 1.0 — write a fraction "
                                        "of the epoch up to 1.0, or an integer for a count of training batches", where)
        return cls(settings.check_val_every_n_epoch, max(1, int(num_train_batches * interval)), num_train_batches)

    @property
    def once_per_epoch(self) -> bool:
        """The default: one validation at each (due) epoch's end, also when a limit cuts the epoch short."""
        return self.every_n_epochs is not None and self.check_batch >= self.num_train_batches

    def epoch_due(self, epoch: int) -> bool:
        return self.every_n_epochs is None or (epoch + 1) % self.every_n_epochs == 0

    def due_after(self, epoch: int, batch_idx: int) -> bool:
        """Whether a validation follows training batch `batch_idx` (0-based, within the epoch) of `epoch`."""
        if not self.epoch_due(epoch):
            return False
        count = batch_idx if self.every_n_epochs is not None else epoch * self.num_train_batches + batch_idx
        return (count + 1) % self.check_batch == 0

    def within_epoch(self, epoch: int, batch_idx: int) -> bool:
        """A validation after this batch, before the epoch's last (whose validation follows the epoch's end)."""
        return batch_idx + 1 < self.num_train_batches and self.due_after(epoch, batch_idx)

    def at_epoch_end(self, epoch: int, batches_run: int) -> bool:
        """A validation after the epoch's training, which ran `batches_run` batches."""
        if self.once_per_epoch:
            return self.epoch_due(epoch)
        return batches_run == self.num_train_batches and self.due_after(epoch, batches_run - 1)
