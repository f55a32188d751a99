"""What a run's task means for its outputs and targets: the shapes and dtypes the loss and metrics read.

    task          one sample's target              the model's output per sample
    multiclass    a class index, ()                (C,) class scores
    binary        0 or 1, () or (1,)               () or (1,): one logit
    multilabel    0 or 1 per label, (L,)           (L,) logits
    regression    floats, any shape                the target's shape
    segmentation  a class index per pixel, (H, W)  (C, H, W) class scores

Which task a run has, and the loss and metrics that follow from it, is resolved before the run
(declarative/assembly/tasks.py); here is only what the engine needs while it runs.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TASKS", "TaskShapeError", "adapt_to_task", "TaskLoss", "class_dim_dropped", "task_scores",
           "class_predictions", "label_predictions", "task_predictions"]

TASKS = ("multiclass", "binary", "multilabel", "regression", "segmentation")


class TaskShapeError(ValueError):
    """Outputs and targets that do not fit the run's task (the message names both shapes)."""


def class_dim_dropped(target_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Class-index targets with a 1 where the output has its class dim ((N, 1) labels, (N, 1, H, W) masks) lose it."""
    if len(target_shape) == len(output_shape) and target_shape[:1] == (1,):
        return target_shape[1:]
    return target_shape


def adapt_to_task(task: str, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and targets shaped and typed as the task's loss and metrics read them (shapes only: no sync).

    - multiclass, segmentation: integer targets become int64 (masks are often uint8) and lose a
      1 where the outputs have classes (`(N, 1)` labels, `(N, 1, H, W)` masks); float targets
      shaped as the outputs are class probabilities and pass as they are.
    - binary: `(N, 1, ...)` outputs or targets lose the 1; 0/1 targets of any dtype become floats.
    - multilabel: `(N, L)` outputs and targets; targets become floats.
    - regression: a trailing 1 on either side goes, so `(N, 1)` outputs meet `(N,)` targets;
      targets become the outputs' float dtype.
    Raises TaskShapeError, naming both shapes, when they do not fit.
    """
    out, tgt = tuple(outputs.shape), tuple(targets.shape)
    if task in ("multiclass", "segmentation"):
        if targets.is_floating_point() and tgt == out:
            return outputs, targets
        expected = out[:1] + out[2:]
        if outputs.ndim >= 2 and targets.ndim == outputs.ndim and tgt[1] == 1 and tgt[:1] + tgt[2:] == expected:
            targets = targets.squeeze(1)  # (N, 1) class labels, (N, 1, H, W) masks
            tgt = tuple(targets.shape)
        if outputs.ndim < 2 or tgt != expected or targets.is_floating_point() or targets.is_complex() \
                or targets.dtype == torch.bool:
            want = f"integer class targets of shape {list(expected)}" if outputs.ndim >= 2 else "class scores (N, C, ...)"
            raise TaskShapeError(f"{task} needs {want} for outputs of shape {list(out)}, but got {_dtype(targets)} "
                             f"targets of shape {list(tgt)}")
        return outputs, targets if targets.dtype == torch.int64 else targets.long()
    if task == "binary":
        if outputs.ndim == targets.ndim + 1 and out[1:2] == (1,):
            outputs = outputs.squeeze(1)
        elif targets.ndim == outputs.ndim + 1 and tgt[1:2] == (1,):
            targets = targets.squeeze(1)
        if outputs.shape != targets.shape:
            raise TaskShapeError(f"binary needs one score per sample, (N) or (N, 1), and 0/1 targets of that shape, but "
                             f"got outputs of shape {list(out)} and targets of shape {list(tgt)}; for C class scores "
                             f"use task: multiclass")
        return outputs, targets.to(_float_dtype(outputs))
    if task == "multilabel":
        if out != tgt or outputs.ndim < 2:
            raise TaskShapeError(f"multilabel needs (N, L) outputs and 0/1 targets of the same shape, but got outputs of "
                             f"shape {list(out)} and targets of shape {list(tgt)}")
        return outputs, targets.to(_float_dtype(outputs))
    if task == "regression":
        if outputs.ndim == targets.ndim + 1 and out[-1:] == (1,):
            outputs = outputs.squeeze(-1)
        elif targets.ndim == outputs.ndim + 1 and tgt[-1:] == (1,):
            targets = targets.squeeze(-1)
        if outputs.shape != targets.shape:
            raise TaskShapeError(f"regression needs outputs shaped as the targets, but got outputs of shape {list(out)} "
                             f"and targets of shape {list(tgt)}")
        if targets.is_complex() or targets.dtype == torch.bool:
            raise TaskShapeError(f"regression needs numeric targets, but got {_dtype(targets)} targets")
        return outputs, targets.to(_float_dtype(outputs))
    raise TaskShapeError(f"unknown task '{task}' (known: {', '.join(TASKS)})")


def class_predictions(outputs: torch.Tensor) -> torch.Tensor:
    """multiclass, segmentation: the class of the highest score, (N, C, ...) → (N, ...)."""
    return outputs.argmax(dim=1)


def label_predictions(probabilities: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """binary, multilabel: 1 where a label's probability is above `threshold`, else 0 (int64)."""
    return (probabilities > threshold).to(torch.int64)


def task_scores(task: str, outputs: torch.Tensor) -> torch.Tensor:
    """The model's outputs as the task's probabilities: softmax over the classes (dim 1) for multiclass and
    segmentation, a sigmoid per label for binary and multilabel; regression outputs are the values."""
    if task in ("multiclass", "segmentation"):
        return outputs.float().softmax(dim=1)
    if task in ("binary", "multilabel"):
        return outputs.float().sigmoid()
    return outputs


def task_predictions(task: str, outputs: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """What the model predicts for each sample, from its raw outputs: a class index (a mask of them for
    segmentation), 0/1 per label, or the regressed values. The metrics decide the same way."""
    if task in ("multiclass", "segmentation"):
        return class_predictions(outputs)
    if task in ("binary", "multilabel"):
        return label_predictions(task_scores(task, outputs), threshold)
    return outputs


def _float_dtype(tensor: torch.Tensor) -> torch.dtype:
    return tensor.dtype if tensor.is_floating_point() else torch.float32


def _dtype(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).replace("torch.", "")


class TaskLoss(nn.Module):
    """A torch loss that reads outputs and targets shaped for the run's task (see `adapt_to_task`).

    Args:
        task: one of TASKS.
        loss: the torch loss module (or the task's default).
    """

    def __init__(self, task: str, loss: nn.Module):
        super().__init__()
        self.task = task
        self.loss = loss

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        outputs, targets = adapt_to_task(self.task, outputs, targets)
        return self.loss(outputs, targets)

    def extra_repr(self) -> str:
        return f"task={self.task}"
