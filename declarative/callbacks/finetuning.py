"""BackboneFinetuning: a frozen backbone joins training at an epoch, at its own learning rate (Lightning's name
and arguments).

    model:
      layers:
        - resnet18: {weights: IMAGENET1K_V1, head: null}
          trainable: false                     # the backbone: frozen from the start
        - Linear: {out_features: 10}           # the new head: trained from the start
    callbacks:
      - BackboneFinetuning: {unfreeze_backbone_at_epoch: 5, backbone_initial_ratio_lr: 0.1}
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from declarative.callbacks.base import Callback
from declarative.model.freezing import freeze, unfreeze
from declarative.training.errors import MisconfigurationError

__all__ = ["BackboneFinetuning"]


class BackboneFinetuning(Callback):
    """Unfreeze the backbone at an epoch and train it as a new param group, as Lightning's BackboneFinetuning.

    The backbone's group starts at `backbone_initial_lr`, or the first group's lr times
    `backbone_initial_ratio_lr`; each later epoch multiplies it by `lr_multiplier` (Lightning's default
    `lambda_func` gives 2.0), capped at the first group's lr when `should_align`.

    Args:
        unfreeze_backbone_at_epoch: the epoch (from 0) at whose start the backbone is unfrozen. Default: 10
        backbone: the items that make the backbone: names given with `name:` or module paths such as
            ``layers.0``; frozen when training starts. Default: the items written with `trainable: false`
        backbone_initial_ratio_lr: the backbone's first lr as a fraction of the first group's. Default: 0.1
        backbone_initial_lr: the backbone's first lr, instead of the ratio. Default: None
        should_align: keep the backbone's lr at most the first group's. Default: True
        lr_multiplier: the backbone lr's factor per epoch after unfreezing. Default: 2.0
        train_bn: BatchNorm layers of the backbone update their statistics once unfrozen. Default: True
        verbose: print the learning rates when they change. Default: False
    """

    def __init__(self, unfreeze_backbone_at_epoch: int = 10, backbone: list[str] | None = None,
                 backbone_initial_ratio_lr: float = 0.1, backbone_initial_lr: float | None = None,
                 should_align: bool = True, lr_multiplier: float = 2.0, train_bn: bool = True, verbose: bool = False):
        if unfreeze_backbone_at_epoch < 0:
            raise ValueError(f"unfreeze_backbone_at_epoch must be 0 or more, but got {unfreeze_backbone_at_epoch}")
        self.unfreeze_backbone_at_epoch = unfreeze_backbone_at_epoch
        self.backbone = backbone
        self.backbone_initial_ratio_lr = backbone_initial_ratio_lr
        self.backbone_initial_lr = backbone_initial_lr
        self.should_align = should_align
        self.lr_multiplier = lr_multiplier
        self.train_bn = train_bn
        self.verbose = verbose
        self.previous_backbone_lr: float | None = None
        self._modules: list[nn.Module] = []
        self._params: list[nn.Parameter] = []

    def setup(self, trainer: Any, model: Any, stage: str) -> None:
        if stage != "fit":
            return
        strategy = getattr(trainer, "strategy", None)
        model = strategy.unwrap(model) if strategy is not None else model  # parameter names as the spec says them
        if self.backbone is None:
            self._params = [p for p in model.parameters() if not p.requires_grad]
            self._modules = [model]
            if not self._params:
                raise MisconfigurationError("BackboneFinetuning has no backbone: no item is written with "
                                            "`trainable: false` — mark the backbone so, or name it with backbone: [...]")
            return
        self._modules = [self._module(model, name) for name in self.backbone]
        for module in self._modules:
            freeze(module, train_bn=self.train_bn)
        self._params = [p for module in self._modules for p in module.parameters()]
        frozen = {id(p) for p in self._params}
        for optimizer in trainer.optimizers:  # built before the callbacks ran: the backbone leaves it
            for group in optimizer.param_groups:
                group["params"] = [p for p in group["params"] if id(p) not in frozen]

    def _module(self, model: nn.Module, name: str) -> nn.Module:
        from declarative.errors import did_you_mean
        from declarative.assembly.param_groups import named_items

        items = named_items(model)
        path = items.get(name, name)
        try:
            return model.get_submodule(path)
        except AttributeError:
            hint = did_you_mean(name, [*items, *(n for n, _ in model.named_modules() if n)])
            raise MisconfigurationError(f"no item is named '{name}' and no module has the path '{name}'"
                                        + (f" — {hint}" if hint else ""), ("backbone",)) from None

    def on_train_epoch_start(self, trainer: Any, model: Any) -> None:
        epoch = trainer.current_epoch
        optimizer = trainer.optimizers[0]
        current_lr = optimizer.param_groups[0]["lr"]
        if epoch == self.unfreeze_backbone_at_epoch and self._params:
            lr = self.backbone_initial_lr if self.backbone_initial_lr is not None \
                else current_lr * self.backbone_initial_ratio_lr
            self.previous_backbone_lr = lr
            for module in self._modules:
                unfreeze(module, train_bn=self.train_bn)
            for parameter in self._params:
                parameter.requires_grad_(True)
            optimizer.add_param_group({"params": self._params, "lr": lr})
            if self.verbose:
                trainer.print(f"Current lr: {round(current_lr, 12)}, Backbone lr: {round(lr, 12)}")
        elif epoch > self.unfreeze_backbone_at_epoch and self.previous_backbone_lr is not None:
            lr = self.previous_backbone_lr * self.lr_multiplier
            lr = current_lr if self.should_align and lr > current_lr else lr
            optimizer.param_groups[-1]["lr"] = lr
            self.previous_backbone_lr = lr
            if self.verbose:
                trainer.print(f"Current lr: {round(current_lr, 12)}, Backbone lr: {round(lr, 12)}")

    def state_dict(self) -> dict:
        return {"previous_backbone_lr": self.previous_backbone_lr}

    def load_state_dict(self, state_dict: dict) -> None:
        self.previous_backbone_lr = state_dict["previous_backbone_lr"]
