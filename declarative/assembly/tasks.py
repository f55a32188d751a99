"""Resolving a spec's task: which one it is, and the loss and metrics that follow when the spec leaves them out.

    task          default loss       default metrics
    multiclass    CrossEntropyLoss   accuracy
    binary        BCEWithLogitsLoss  accuracy, f1
    multilabel    BCEWithLogitsLoss  accuracy, f1
    regression    MSELoss            mse, mae, r2
    segmentation  CrossEntropyLoss   iou, accuracy

A spec names its task with `task:` (torchmetrics' words), or dtrain infers it: from the loss when
it says (CrossEntropyLoss → multiclass, or segmentation for per-position outputs; BCE → binary or
multilabel; MSE/L1/SmoothL1/Huber → regression), else from the data's targets and the model's
output. Resolution returns a new, resolved spec (it never writes into the one it was given); the
resolved spec records the task, loss and metrics a run used.
"""

from __future__ import annotations

import dataclasses

import torch

from declarative.errors import SpecError
from declarative.spec.config import Component, Spec
from declarative.training.tasks import TASKS, TaskLoss, class_dim_dropped

__all__ = ["DEFAULT_LOSS", "DEFAULT_METRICS", "task_from_loss", "task_from_data", "resolve_task", "task_path",
           "task_summary", "check_metric_tasks", "build_loss"]

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
        per_position = class_dim_dropped(target_shape, output_shape)  # a (1, H, W) mask is an (H, W) one
        if output_shape[1:] == per_position:
            return "segmentation" if per_position else "multiclass"
    if _one_score(output_shape) and _drop_leading_one(output_shape) == _drop_leading_one(target_shape):
        return "binary"
    if output_shape == target_shape:
        return "multilabel"
    return None


def task_path(spec: Spec, otherwise: tuple | None = None) -> tuple:
    """Where to point when the data does not fit the task: `task:` or the loss when written, else
    `otherwise` (default: the model's last layer, whose outputs the task was read from)."""
    if spec.task_written:
        return ("task",)
    if spec.loss_written:
        return ("loss",)
    return otherwise or ("model", "layers", len(spec.model.layers) - 1)


def resolve_task(spec: Spec, output_shape: tuple[int, ...], *, target_shape: tuple[int, ...] | None = None,
                 target_dtype: torch.dtype | None = None) -> Spec:
    """The spec with its task, loss and metrics (those it leaves out) filled in from its loss, model output
    and data; the spec given is left as it was.

    Without the data (`dtrain validate`) the task may stay unknown (`task` None in the result).
    Raises a located SpecError when the data leaves the task open or a metric does not fit it.
    """
    task = spec.task
    if task is None and spec.loss is not None:
        task = task_from_loss(spec.loss.name, output_shape)
    if task is None and target_shape is not None and target_dtype is not None:
        task = task_from_data(output_shape, target_shape, target_dtype)
        if task is None:
            raise spec.error(("data", "source"), f"cannot tell the task from {str(target_dtype).replace('torch.', '')} "
                             f"targets of shape {list(target_shape)} and model outputs of shape "
                             f"{list(output_shape)} (one sample each): add task: (one of {', '.join(TASKS)})")
    if task is None:
        return spec
    resolved = dataclasses.replace(
        spec, task=task,
        loss=spec.loss if spec.loss is not None else Component(DEFAULT_LOSS[task], {}, ("loss",)),
        metrics=spec.metrics if spec.metrics is not None else list(DEFAULT_METRICS[task]))
    check_metric_tasks(resolved)
    return resolved


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


def build_loss(spec: Spec) -> TaskLoss:
    """The spec's loss (resolved: `resolve_task` first), reading outputs and targets as its task says."""
    from declarative.training.components import LOSSES

    assert spec.task is not None and spec.loss is not None, "build_loss needs a resolved spec: call resolve_task"
    return TaskLoss(spec.task, LOSSES.build_component(spec.loss, spec))
