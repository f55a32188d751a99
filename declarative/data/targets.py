"""Where the data meets the model: class-index targets must fit the model's class scores, and
binary or multilabel targets must be 0 or 1.

A target of 11 under ``CrossEntropyLoss`` with 10 class scores is a CUDA device-side assert (or an
IndexError on the CPU) deep inside the first step; here it is a located error before training,
naming the layer that sets the number of scores.
"""

from __future__ import annotations

__all__ = ["CLASS_INDEX_LOSSES", "check_targets_fit_model"]

# Losses that take (N, C, ...) scores and (N, ...) class indices in [0, C).
CLASS_INDEX_LOSSES = ("CrossEntropyLoss", "NLLLoss", "MultiMarginLoss", "MultiLabelMarginLoss")

# The argument that sets how many outputs (channels, features) a layer gives.
_WIDTH_ARGUMENTS = ("out_features", "out_channels", "num_classes", "hidden_size", "embed_dim")


def _class_layer(plan, classes: int):
    """The index and node of the layer that makes the `classes` scores: the first of the final run of
    layers that all give that many (a Softmax after a Linear keeps the Linear's count)."""
    index = len(plan.nodes) - 1
    while index > 0 and plan.nodes[index - 1].output_shape[:1] == (classes,):
        index -= 1
    return index, plan.nodes[index]


def _check_not_negative(spec, min_target: int | None) -> None:
    """A negative target is no class (a CUDA device-side assert in the first step), unless the loss ignores it."""
    if min_target is None or min_target >= 0:
        return
    if spec.task in ("binary", "multilabel"):
        needs, ignored = f"{spec.task} targets are 0 or 1", None
    elif spec.loss.name in CLASS_INDEX_LOSSES:
        default = -100 if spec.loss.name in ("CrossEntropyLoss", "NLLLoss") else None  # torch's ignore_index
        ignored = spec.loss.kwargs.get("ignore_index", default)
        needs = f"{spec.loss.name} needs class indices from 0"
        if ignored is not None:
            needs += f" (or its ignore_index, {ignored})"
    else:
        return
    if min_target != ignored:
        raise spec.error(("data", "source"), f"the targets go down to {min_target}, but {needs} — check the data's targets")


def check_targets_fit_model(spec, max_target: int | None, plan, min_target: int | None = None) -> None:
    """Integer targets under a class-index loss must be below the model's number of class scores and not
    negative (except the loss's ignore_index); integer binary and multilabel targets must be 0 or 1.

    Args:
        spec: The typed spec (its loss and layers).
        max_target: The largest integer target over all splits (`DataModule.max_target`); None for
            float targets, which this does not check.
        plan: The model's plan (`declarative.model.builder.plan_model`), for its output shape.
        min_target: The smallest integer target over all splits (`DataModule.min_target`).
    """
    _check_not_negative(spec, min_target)
    num_classes = None if max_target is None else max_target + 1
    if spec.task in ("binary", "multilabel") and num_classes is not None and num_classes > 2:
        message = (f"{spec.task} targets are 0 or 1, but these go up to {num_classes - 1} — for counts or other "
                   f"numbers use task: regression")
        if spec.task == "binary":
            message += f"; for classes give the model {num_classes} class scores (task: multiclass)"
        from declarative.assembly.tasks import task_path

        raise spec.error(task_path(spec, otherwise=("data", "source")), message)  # the targets told the task
    if num_classes is None or spec.loss.name not in CLASS_INDEX_LOSSES or not plan.nodes:
        return
    output = plan.output_shape
    if not output:
        return  # one score per sample: the loss itself reports the shape
    classes = output[0]
    if num_classes <= classes or spec.loss.kwargs.get("ignore_index") == num_classes - 1:
        return  # a largest target the loss ignores (e.g. 255 around segmentation masks) says nothing
    index, node = _class_layer(plan, classes)
    argument = next((a for a in _WIDTH_ARGUMENTS if node.kwargs.get(a) == classes), None)
    name = node.component.name
    where = f"layer {index}, {name}" + (f" {argument}={classes}" if argument else f" giving {classes}")
    message = (f"the targets go up to {num_classes - 1} but the model gives {classes} class scores ({where}); "
               f"{spec.loss.name} needs class indices from 0 to {classes - 1}")
    if argument:
        message += f" — set {argument}: {num_classes}, or check the data's targets"
    path = node.component.path
    if argument in node.component.kwargs:
        path = path + (name, argument)
    raise spec.error(path, message)
