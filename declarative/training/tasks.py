"""Tasks: what the targets mean, and the loss and metrics that fit them by default.

    task          one sample's target              the model's output per sample  loss               metrics
    multiclass    a class index, ()                (C,) class scores              CrossEntropyLoss   accuracy
    binary        0 or 1, () or (1,)               () or (1,): one logit          BCEWithLogitsLoss  accuracy, f1
    multilabel    0 or 1 per label, (L,)           (L,) logits                    BCEWithLogitsLoss  accuracy, f1
    regression    floats, any shape                the target's shape             MSELoss            mse, mae, r2
    segmentation  a class index per pixel, (H, W)  (C, H, W) class scores         CrossEntropyLoss   iou, accuracy

A spec names its task with `task:` (torchmetrics' words), or dtrain infers it: from the loss when
it says (CrossEntropyLoss → multiclass, or segmentation for per-position outputs; BCE → binary or
multilabel; MSE/L1/SmoothL1/Huber → regression), else from the data's targets and the model's
output. The resolved spec records the task, loss and metrics a run used.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from declarative.errors import SpecError
from declarative.spec.config import Component, Spec

__all__ = ["TASKS", "DEFAULT_LOSS", "DEFAULT_METRICS", "task_from_loss", "task_from_data", "resolve_task", "task_path",
           "task_summary",
           "adapt_to_task", "TaskLoss", "build_loss"]

TASKS = ("multiclass", "binary", "multilabel", "regression", "segmentation")
DEFAULT_LOSS = {"multiclass": "CrossEntropyLoss", "binary": "BCEWithLogitsLoss", "multilabel": "BCEWithLogitsLoss",
                "regression": "MSELoss", "segmentation": "CrossEntropyLoss"}
DEFAULT_METRICS = {"multiclass": ["accuracy"], "binary": ["accuracy", "f1"], "multilabel": ["accuracy", "f1"],
                   "regression": ["mse", "mae", "r2"], "segmentation": ["iou", "accuracy"]}
# Losses that say what the targets are; any other loss leaves the task to `task:` or the data.
_LOSS_FAMILY = {"CrossEntropyLoss": "multiclass", "NLLLoss": "multiclass", "BCEWithLogitsLoss": "binary",
                "BCELoss": "binary", "MSELoss": "regression", "L1Loss": "regression", "SmoothL1Loss": "regression",
                "HuberLoss": "regression"}


def _one_score(output_shape: tuple[int, ...]) -> bool:
    """One score per sample (or per position): `()`, `(1,)` or `(1, H, W)`."""
    return len(output_shape) == 0 or output_shape[0] == 1


def task_from_loss(loss_name: str, output_shape: tuple[int, ...]) -> str | None:
    """The task a loss implies for a model output of `output_shape` (one sample), or None when it does not say."""
    family = _LOSS_FAMILY.get(loss_name)
    if family == "multiclass":
        return "segmentation" if len(output_shape) >= 2 else "multiclass"
    if family == "binary":
        return "binary" if _one_score(output_shape) else "multilabel"
    return family


def _drop_leading_one(shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape[1:] if shape[:1] == (1,) else shape


def task_from_data(output_shape: tuple[int, ...], target_shape: tuple[int, ...], dtype: torch.dtype) -> str | None:
    """The task that one sample's output and target shapes and the target dtype imply, or None.

    Float targets → regression. Integer targets shaped as the output without its first (class)
    dim → multiclass (one target per sample) or segmentation (one per pixel). Integer or bool
    targets shaped as the output → binary (one score per sample or pixel) or multilabel.
    """
    if dtype.is_floating_point:
        return "regression"
    if dtype.is_complex:
        return None
    if dtype != torch.bool and len(output_shape) >= 1 and output_shape[0] >= 2:
        per_position = _class_dim_dropped(target_shape, output_shape)  # a (1, H, W) mask is an (H, W) one
        if output_shape[1:] == per_position:
            return "segmentation" if per_position else "multiclass"
    if _one_score(output_shape) and _drop_leading_one(output_shape) == _drop_leading_one(target_shape):
        return "binary"
    if output_shape == target_shape:
        return "multilabel"
    return None


def _class_dim_dropped(target_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Class-index targets with a 1 where the output has its class dim ((N, 1) labels, (N, 1, H, W) masks) lose it."""
    if len(target_shape) == len(output_shape) and target_shape[:1] == (1,):
        return target_shape[1:]
    return target_shape


def task_path(spec: Spec, otherwise: tuple | None = None) -> tuple:
    """Where to point when the data does not fit the task: `task:` or the loss when written, else
    `otherwise` (default: the model's last layer, whose outputs the task was read from)."""
    if spec.task_written:
        return ("task",)
    if spec.loss_written:
        return ("loss",)
    return otherwise or ("model", "layers", len(spec.model.layers) - 1)


def resolve_task(spec: Spec, output_shape: tuple[int, ...], *, target_shape: tuple[int, ...] | None = None,
                 target_dtype: torch.dtype | None = None) -> bool:
    """Fill in the spec's task, loss and metrics (those it leaves out) from its loss, model output and data.

    Without the data (`dtrain validate`) the task may stay unknown: returns whether it is known.
    Raises a located SpecError when the data leaves the task open or a metric does not fit it.
    """
    if spec.task is None and spec.loss is not None:
        spec.task = task_from_loss(spec.loss.name, output_shape)
    if spec.task is None and target_shape is not None and target_dtype is not None:
        spec.task = task_from_data(output_shape, target_shape, target_dtype)
        if spec.task is None:
            raise spec.error(("data", "source"), f"cannot tell the task from {str(target_dtype).replace('torch.', '')} "
                             f"targets of shape {list(target_shape)} and model outputs of shape "
                             f"{list(output_shape)} (one sample each): add task: (one of {', '.join(TASKS)})")
    if spec.task is None:
        return False
    if spec.loss is None:
        spec.loss = Component(DEFAULT_LOSS[spec.task], {}, ("loss",))
    if spec.metrics is None:
        spec.metrics = list(DEFAULT_METRICS[spec.task])
    check_metric_tasks(spec)
    return True


def task_summary(spec: Spec) -> str | None:
    """One console line for a run whose task, loss or metrics were left to dtrain, saying what it chose;
    None when the spec wrote all three."""
    from declarative.training.metrics import metric_log_name

    if spec.task_written and spec.loss_written and spec.metrics_written:
        return None
    task = f"task: {spec.task}" + ("" if spec.task_written else " (inferred)")
    metrics = ", ".join(metric_log_name(m) for m in spec.metrics or []) or "none"
    return f"{task}, loss: {spec.loss.name}, metrics: {metrics}"


def check_metric_tasks(spec: Spec) -> None:
    """Each metric the spec lists must fit its task (no `mse` on class scores)."""
    from declarative.training.metrics import METRICS

    problems = []
    for index, item in enumerate(spec.metrics or []):
        name = item if isinstance(item, str) else next(iter(item))
        tasks = getattr(METRICS[name].factory, "tasks", TASKS) if name in METRICS else TASKS
        if spec.task not in tasks:
            problems.append(spec.problem(("metrics", index), f"metric '{name}' is for {', '.join(tasks)} "
                                                             f"outputs, but this run's task is {spec.task}"))
    if problems:
        raise SpecError(problems)


def adapt_to_task(task: str, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and targets shaped and typed as the task's loss and metrics read them (shapes only: no sync).

    - multiclass, segmentation: integer targets become int64 (masks are often uint8) and lose a
      1 where the outputs have classes (`(N, 1)` labels, `(N, 1, H, W)` masks); float targets
      shaped as the outputs are class probabilities and pass as they are.
    - binary: `(N, 1, ...)` outputs or targets lose the 1; 0/1 targets of any dtype become floats.
    - multilabel: `(N, L)` outputs and targets; targets become floats.
    - regression: a trailing 1 on either side goes, so `(N, 1)` outputs meet `(N,)` targets;
      targets become the outputs' float dtype.
    Raises ValueError, naming both shapes, when they do not fit.
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
            raise ValueError(f"{task} needs {want} for outputs of shape {list(out)}, but got {_dtype(targets)} "
                             f"targets of shape {list(tgt)}")
        return outputs, targets if targets.dtype == torch.int64 else targets.long()
    if task == "binary":
        if outputs.ndim == targets.ndim + 1 and out[1:2] == (1,):
            outputs = outputs.squeeze(1)
        elif targets.ndim == outputs.ndim + 1 and tgt[1:2] == (1,):
            targets = targets.squeeze(1)
        if outputs.shape != targets.shape:
            raise ValueError(f"binary needs one score per sample, (N) or (N, 1), and 0/1 targets of that shape, but "
                             f"got outputs of shape {list(out)} and targets of shape {list(tgt)}; for C class scores "
                             f"use task: multiclass")
        return outputs, targets.to(_float_dtype(outputs))
    if task == "multilabel":
        if out != tgt or outputs.ndim < 2:
            raise ValueError(f"multilabel needs (N, L) outputs and 0/1 targets of the same shape, but got outputs of "
                             f"shape {list(out)} and targets of shape {list(tgt)}")
        return outputs, targets.to(_float_dtype(outputs))
    if task == "regression":
        if outputs.ndim == targets.ndim + 1 and out[-1:] == (1,):
            outputs = outputs.squeeze(-1)
        elif targets.ndim == outputs.ndim + 1 and tgt[-1:] == (1,):
            targets = targets.squeeze(-1)
        if outputs.shape != targets.shape:
            raise ValueError(f"regression needs outputs shaped as the targets, but got outputs of shape {list(out)} "
                             f"and targets of shape {list(tgt)}")
        if targets.is_complex() or targets.dtype == torch.bool:
            raise ValueError(f"regression needs numeric targets, but got {_dtype(targets)} targets")
        return outputs, targets.to(_float_dtype(outputs))
    raise ValueError(f"unknown task '{task}' (known: {', '.join(TASKS)})")


def _float_dtype(tensor: torch.Tensor) -> torch.dtype:
    return tensor.dtype if tensor.is_floating_point() else torch.float32


def _dtype(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).replace("torch.", "")


class TaskLoss(nn.Module):
    """A torch loss that reads outputs and targets shaped for the run's task (see `adapt_to_task`).

    Args:
        task: one of TASKS.
        loss: the torch loss module the spec names (or the task's default).
        spec: where to point when the shapes do not fit.
    """

    def __init__(self, task: str, loss: nn.Module, spec: Any = None):
        super().__init__()
        self.task = task
        self.loss = loss
        self._spec = spec

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        try:
            outputs, targets = adapt_to_task(self.task, outputs, targets)
        except ValueError as exc:
            if self._spec is None:
                raise
            raise self._spec.error(task_path(self._spec), f"{exc}") from None
        return self.loss(outputs, targets)

    def extra_repr(self) -> str:
        return f"task={self.task}"


def build_loss(spec: Spec) -> TaskLoss:
    """The spec's loss (resolved: `resolve_task` first), reading outputs and targets as its task says."""
    from declarative.training.components import LOSSES

    assert spec.task is not None and spec.loss is not None, "build_loss needs a resolved spec: call resolve_task"
    return TaskLoss(spec.task, LOSSES.build_component(spec.loss, spec), spec)
