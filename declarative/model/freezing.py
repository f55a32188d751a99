"""Frozen layers: `trainable: false` beside a layer item (a layer, block, construct or torchvision model).

    - resnet18: {weights: IMAGENET1K_V1, head: null}
      trainable: false      # requires_grad off for every parameter inside
      train_bn: false       # and its BatchNorm layers run in eval mode: their running statistics stay

Frozen parameters join no optimizer group; BackboneFinetuning (declarative.callbacks.finetuning) unfreezes
them at an epoch. `train_bn` is the name of Lightning's BaseFinetuning.freeze argument.
"""

from __future__ import annotations

import torch.nn as nn

__all__ = ["freeze", "unfreeze", "is_batch_norm"]


def is_batch_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def _stay_in_eval(module: nn.Module, args: tuple) -> None:
    # model.train() sets training again each epoch; this runs before each forward and wins.
    if getattr(module, "frozen_statistics", False):
        module.training = False


def freeze(module: nn.Module, train_bn: bool = True) -> None:
    """requires_grad off for every parameter; with train_bn false, BatchNorm statistics are frozen too."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    if not train_bn:
        for layer in module.modules():
            if is_batch_norm(layer):
                layer.frozen_statistics = True
                if not getattr(layer, "_eval_hooked", False):
                    layer.register_forward_pre_hook(_stay_in_eval)
                    layer._eval_hooked = True


def unfreeze(module: nn.Module, train_bn: bool = True) -> None:
    """The opposite of freeze: parameters trainable; BatchNorm statistics update again unless train_bn is false."""
    for parameter in module.parameters():
        parameter.requires_grad_(True)
    if train_bn:
        for layer in module.modules():
            if is_batch_norm(layer):
                layer.frozen_statistics = False
