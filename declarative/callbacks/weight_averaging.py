"""Averaged weights: WeightAveraging and EMAWeightAveraging (Lightning 2.6), StochasticWeightAveraging.

All keep a torch.optim.swa_utils.AveragedModel beside the model. Validation runs with the averaged weights
(swapped in for the run, swapped back after), checkpoints hold them as their `state_dict` (the weights being
trained go to the callback's own state), and when training ends the model keeps them, so the test stage and
`dtrain test` score the averaged model.

    callbacks:
      - EMAWeightAveraging: {decay: 0.999}
      - StochasticWeightAveraging: {swa_lrs: 0.01, swa_epoch_start: 0.75}
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn

from declarative.callbacks.base import Callback
from declarative.training.errors import MisconfigurationError


def _unwrapped(trainer: Any, model: torch.nn.Module) -> torch.nn.Module:
    """The model without the strategy's wrapper (DDP): what is averaged, and what a checkpoint's keys name."""
    strategy = getattr(trainer, "strategy", None)
    return strategy.unwrap(model) if strategy is not None else model

__all__ = ["EMAWeightAveraging", "StochasticWeightAveraging", "WeightAveraging"]


class WeightAveraging(Callback):
    """Average the weights over the optimizer steps (an equal-weight running mean), as Lightning's WeightAveraging.

    Args:
        device: where the averaged copy lives (e.g. ``cpu`` to spare GPU memory). Default: the model's device
        use_buffers: average the buffers (BatchNorm statistics) too, rather than keep the model's. Default: True
    """

    def __init__(self, device: str | None = None, use_buffers: bool = True):
        self.device = device
        self.use_buffers = use_buffers
        self.average: AveragedModel | None = None
        self._latest_update_step = 0

    def _averaged_model(self, model: torch.nn.Module) -> AveragedModel:
        return AveragedModel(model, device=self.device, use_buffers=self.use_buffers)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        """Whether to fold the weights in after optimizer step `step_idx` or at the end of epoch `epoch_idx`."""
        return step_idx is not None

    def setup(self, trainer: Any, model: Any, stage: str) -> None:
        if stage == "fit" and self.average is None:
            self.average = self._averaged_model(_unwrapped(trainer, model))

    def on_train_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        # once per optimizer step, not per accumulated micro-batch
        if trainer.global_step > self._latest_update_step and self.should_update(step_idx=trainer.global_step - 1):
            self.average.update_parameters(_unwrapped(trainer, model))
            self._latest_update_step = trainer.global_step

    def on_train_epoch_end(self, trainer: Any, model: Any) -> None:
        if self.should_update(epoch_idx=trainer.current_epoch):
            self.average.update_parameters(_unwrapped(trainer, model))

    def on_validation_start(self, trainer: Any, model: Any) -> None:
        if self.average is not None:
            self._swap(_unwrapped(trainer, model))

    def on_validation_end(self, trainer: Any, model: Any) -> None:
        if self.average is not None:
            self._swap(_unwrapped(trainer, model))

    def on_train_end(self, trainer: Any, model: Any) -> None:
        if self.average is not None:
            self._copy_average_to(_unwrapped(trainer, model))

    def on_save_checkpoint(self, trainer: Any, model: Any, checkpoint: dict) -> None:
        """The checkpoint's weights are the averaged ones; the weights being trained go to this callback's state."""
        if self.average is None or trainer.sanity_checking:
            return
        swapped = getattr(self, "_swapped", False)  # saved during validation, the model holds the average now
        model = _unwrapped(trainer, model)
        current, averaged = (self.average.module, model) if swapped else (model, self.average.module)
        checkpoint["state_dict"] = {k: v.detach().clone() for k, v in averaged.state_dict().items()}
        state = checkpoint.setdefault("callbacks", {}).setdefault(self.state_key, {})
        state["current_model_state"] = {k: v.detach().clone() for k, v in current.state_dict().items()}
        state["n_averaged"] = int(self.average.n_averaged)

    def on_load_checkpoint(self, trainer: Any, model: Any, checkpoint: dict) -> None:
        """A resumed run: the checkpoint's weights are the average; the weights being trained come back to the model."""
        state = checkpoint.get("callbacks", {}).get(self.state_key, {})
        if self.average is None or "current_model_state" not in state:
            return
        self.average.module.load_state_dict(checkpoint["state_dict"])
        self.average.n_averaged.fill_(state["n_averaged"])
        _unwrapped(trainer, model).load_state_dict(state["current_model_state"])

    def _tensors(self, module: torch.nn.Module) -> list[torch.Tensor]:
        return [*module.parameters(), *(module.buffers() if self.use_buffers else [])]

    def _swap(self, model: torch.nn.Module) -> None:
        with torch.no_grad():
            for average, current in zip(self._tensors(self.average.module), self._tensors(model)):
                kept = current.detach().clone()
                current.copy_(average)
                average.copy_(kept)
        self._swapped = not getattr(self, "_swapped", False)

    def _copy_average_to(self, model: torch.nn.Module) -> None:
        with torch.no_grad():
            for average, current in zip(self._tensors(self.average.module), self._tensors(model)):
                current.copy_(average)

    def state_dict(self) -> dict:
        return {"latest_update_step": self._latest_update_step}

    def load_state_dict(self, state_dict: dict) -> None:
        self._latest_update_step = state_dict["latest_update_step"]


class EMAWeightAveraging(WeightAveraging):
    """An exponential moving average of the weights, as Lightning's EMAWeightAveraging:
    ``average = decay * average + (1 - decay) * weights`` after each update step (the first update copies).

    Args:
        device: where the averaged copy lives. Default: the model's device
        use_buffers: average the buffers too. Default: True
        decay: the weight of the average so far. Default: 0.999
        update_every_n_steps: update after every N-th optimizer step. Default: 1
        update_starting_at_step: the first step (from 0) that updates. Default: None (the first)
        update_starting_at_epoch: from this epoch on, also update at each epoch's end. Default: None
    """

    def __init__(self, device: str | None = None, use_buffers: bool = True, decay: float = 0.999,
                 update_every_n_steps: int = 1, update_starting_at_step: int | None = None,
                 update_starting_at_epoch: int | None = None):
        if not 0 <= decay <= 1:
            raise ValueError(f"decay must be in [0, 1], but got decay={decay}")
        super().__init__(device=device, use_buffers=use_buffers)
        self.decay = decay
        self.update_every_n_steps = update_every_n_steps
        self.update_starting_at_step = update_starting_at_step
        self.update_starting_at_epoch = update_starting_at_epoch

    def _averaged_model(self, model: torch.nn.Module) -> AveragedModel:
        return AveragedModel(model, device=self.device, use_buffers=self.use_buffers,
                             multi_avg_fn=get_ema_multi_avg_fn(self.decay))

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        if step_idx is not None:
            started = self.update_starting_at_step is None or step_idx >= self.update_starting_at_step
            if started and self.update_every_n_steps > 0 and step_idx % self.update_every_n_steps == 0:
                return True
        if epoch_idx is not None:
            return self.update_starting_at_epoch is not None and epoch_idx >= self.update_starting_at_epoch
        return False


class StochasticWeightAveraging(WeightAveraging):
    """Stochastic weight averaging, as Lightning's StochasticWeightAveraging: from `swa_epoch_start` on, the
    learning rate anneals to `swa_lrs` (torch's SWALR, in place of the spec's scheduler) and the weights are
    averaged at each epoch's end; when training ends the model takes the average, and its BatchNorm statistics
    are recomputed with one pass over the training batches (torch.optim.swa_utils.update_bn).

    Args:
        swa_lrs: the learning rate SWALR anneals to (one value, or one per param group).
        swa_epoch_start: the first averaged epoch: an epoch (int, from 0) or a fraction of max_epochs. Default: 0.8
        annealing_epochs: epochs of the annealing. Default: 10
        annealing_strategy: ``cos`` or ``linear``. Default: cos
        device: where the averaged copy lives. Default: cpu
    """

    def __init__(self, swa_lrs: float | list[float], swa_epoch_start: int | float = 0.8, annealing_epochs: int = 10,
                 annealing_strategy: Literal["cos", "linear"] = "cos", device: str | None = "cpu"):
        if isinstance(swa_epoch_start, float) and not 0 < swa_epoch_start <= 1:
            raise ValueError(f"swa_epoch_start as a fraction must be in (0, 1], but got {swa_epoch_start}")
        super().__init__(device=device, use_buffers=False)
        self.swa_lrs = swa_lrs
        self.swa_epoch_start = swa_epoch_start
        self.annealing_epochs = annealing_epochs
        self.annealing_strategy = annealing_strategy
        self.swa_scheduler: SWALR | None = None
        self._start_epoch = 0

    def setup(self, trainer: Any, model: Any, stage: str) -> None:
        super().setup(trainer, model, stage)
        if stage == "fit":
            start = self.swa_epoch_start
            if isinstance(start, float):
                epochs = trainer.settings.epochs_limit
                if epochs is None:
                    raise MisconfigurationError("swa_epoch_start as a fraction needs trainer.max_epochs — give an epoch",
                                            ("swa_epoch_start",))
                start = max(0, math.ceil(epochs * start) - 1)
            self._start_epoch = start

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return epoch_idx is not None and epoch_idx >= self._start_epoch

    def on_train_epoch_start(self, trainer: Any, model: Any) -> None:
        if trainer.current_epoch == self._start_epoch and self.swa_scheduler is None:
            optimizer = trainer.optimizers[0]
            self.swa_scheduler = SWALR(optimizer, swa_lr=self.swa_lrs, anneal_epochs=self.annealing_epochs,
                                       anneal_strategy=self.annealing_strategy)
            trainer.lr_scheduler = None  # SWALR takes over from the spec's scheduler, as in Lightning

    def on_train_epoch_end(self, trainer: Any, model: Any) -> None:
        super().on_train_epoch_end(trainer, model)
        if self.swa_scheduler is not None:
            self.swa_scheduler.step()

    def on_validation_start(self, trainer: Any, model: Any) -> None:
        if self.average is not None and self.average.n_averaged > 0:
            self._swap(_unwrapped(trainer, model))

    def on_validation_end(self, trainer: Any, model: Any) -> None:
        if getattr(self, "_swapped", False):
            self._swap(_unwrapped(trainer, model))

    def on_train_end(self, trainer: Any, model: Any) -> None:
        if self.average is None or self.average.n_averaged == 0:
            return
        model = _unwrapped(trainer, model)
        self._copy_average_to(model)
        batches = getattr(trainer, "train_dataloader", None)
        if batches is not None:
            torch.optim.swa_utils.update_bn(batches, model)
