"""Classification metrics from one confusion matrix per metric, summed on the device over batches.

Names, arguments and defaults follow torchmetrics (`average`: micro / macro / weighted / none,
`threshold`, `ignore_index`, `top_k`, `normalize`), with one exception: `accuracy` averages over
samples (micro) by default, so that it is the fraction of samples right, where torchmetrics'
multiclass default is the macro mean of per-class recall.

The matrix is indexed [target, predicted]: `(C, C)` for multiclass and segmentation (C from the
model's output), `(L, 2, 2)` for multilabel and `(1, 2, 2)` for binary. Every value derives from
its counts, so it is exact over the epoch, and the matrix adds up across processes.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch

from declarative.training.metric_base import Metric, float_state_dtype
from declarative.training.tasks import adapt_to_task, class_predictions, label_predictions

__all__ = ["Accuracy", "Precision", "Recall", "F1Score", "JaccardIndex", "ConfusionMatrix", "CLASSIFICATION"]

CLASSIFICATION = ("multiclass", "binary", "multilabel", "segmentation")
Average = Literal["micro", "macro", "weighted", "none"]


def _divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, 0 where the denominator is 0 (torchmetrics' zero_division=0)."""
    return torch.where(denominator > 0, numerator / denominator.clamp(min=1e-30), torch.zeros_like(numerator))


class _ConfusionMetric(Metric):
    """Base class: a confusion matrix summed over batches, read through `score` and `average`."""

    tasks = CLASSIFICATION

    def __init__(self, task: str = "multiclass", average: str = "macro", threshold: float = 0.5,
                 ignore_index: Optional[int] = None):
        if task not in CLASSIFICATION:
            raise ValueError(f"{type(self).__name__} is for {', '.join(CLASSIFICATION)} outputs, but the task is {task}")
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must lie in [0, 1], but got threshold={threshold}")
        self.task, self.average, self.threshold, self.ignore_index = task, average, threshold, ignore_index
        super().__init__()

    @property
    def per_label(self) -> bool:
        """Binary and multilabel count each label as its own 2×2 matrix."""
        return self.task in ("binary", "multilabel")

    @property
    def scalar(self) -> bool:
        return self.average != "none" or self.task == "binary"

    def reset(self, device: torch.device) -> None:
        self.matrix: torch.Tensor | None = None  # sized at the first batch, from the model's output

    def states(self) -> list[torch.Tensor]:
        return [self.matrix] if self.matrix is not None else []

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        outputs, targets = adapt_to_task(self.task, outputs, targets)
        if self.per_label:
            self._update_labels(outputs, targets)
        else:
            self._update_classes(outputs, targets)

    def _matrix(self, shape: tuple[int, ...], device: torch.device, what: str) -> torch.Tensor:
        if self.matrix is None:
            self.matrix = torch.zeros(shape, dtype=torch.int64, device=device)
        elif tuple(self.matrix.shape) != shape:
            raise ValueError(f"the model gives {shape[0]} {what} now, but {self.matrix.shape[0]} in earlier batches")
        return self.matrix

    def _update_classes(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        if targets.is_floating_point():
            targets = targets.argmax(dim=1)  # class probabilities (label smoothing, mixup)
        classes = outputs.shape[1]
        matrix = self._matrix((classes, classes), outputs.device, "class scores")
        predicted = class_predictions(outputs).reshape(-1)
        target = targets.reshape(-1)
        # Targets outside [0, C) (CrossEntropyLoss's ignore_index -100, a 255 border) count nowhere.
        counted = (target >= 0) & (target < classes)
        if self.ignore_index is not None:
            counted &= target != self.ignore_index
        index = target.clamp(0, classes - 1) * classes + predicted
        matrix.view(-1).index_add_(0, index, counted.to(torch.int64))

    def _update_labels(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        labels = 1 if self.task == "binary" else outputs.shape[1]
        matrix = self._matrix((labels, 2, 2), outputs.device, "labels")
        scores = outputs.movedim(1, -1).reshape(-1, labels) if labels > 1 else outputs.reshape(-1, 1)
        target = targets.movedim(1, -1).reshape(-1, labels) if labels > 1 else targets.reshape(-1, 1)
        # Probabilities are thresholded as they are, logits after a sigmoid: decided on the device.
        is_probability = ((scores >= 0) & (scores <= 1)).all()
        probabilities = torch.where(is_probability, scores, scores.float().sigmoid().to(scores.dtype))
        predicted = label_predictions(probabilities, self.threshold)
        counted = torch.ones_like(predicted) if self.ignore_index is None else (target != self.ignore_index).long()
        label = torch.arange(labels, device=outputs.device)
        index = label * 4 + (target > 0.5).to(torch.int64) * 2 + predicted
        matrix.view(-1).index_add_(0, index.reshape(-1), counted.reshape(-1))

    def counts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """True positives, false positives, false negatives, true negatives: one per class or label."""
        assert self.matrix is not None
        m = self.matrix.to(float_state_dtype(self.matrix.device))
        if self.per_label:
            return m[:, 1, 1], m[:, 0, 1], m[:, 1, 0], m[:, 0, 0]
        tp = m.diagonal()
        fp, fn = m.sum(dim=0) - tp, m.sum(dim=1) - tp
        return tp, fp, fn, m.sum() - tp - fp - fn

    def score(self, tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, tn: torch.Tensor) -> torch.Tensor:
        """The metric from counts (per class, or summed for micro)."""
        raise NotImplementedError

    def compute(self) -> torch.Tensor:
        if self.matrix is None:
            return torch.tensor(float("nan"))
        tp, fp, fn, tn = self.counts()
        if self.task == "binary":
            return self.score(tp, fp, fn, tn)[0].float()
        if self.average == "micro":
            return self.score(tp.sum(), fp.sum(), fn.sum(), tn.sum()).float()
        per_class = self.score(tp, fp, fn, tn)
        if self.average == "none":
            return per_class.float()
        if self.average == "weighted":
            weights = tp + fn
        else:
            weights = torch.ones_like(tp)
            if not self.per_label:  # a class never seen nor predicted has no score to average (as torchmetrics)
                weights = torch.where(tp + fp + fn > 0, weights, torch.zeros_like(weights))
        return ((per_class * weights).sum() / weights.sum()).float()


class Accuracy(_ConfusionMetric):
    """Accuracy: the fraction of samples (pixels, labels) predicted right; top-k for multiclass.

    Args:
        top_k: (multiclass) count a sample as right when its target is among the k highest scores. Default: 1
        average: ``micro`` (over samples), ``macro`` (mean of per-class recall), ``weighted`` or ``none``
            (one value per class). Default: ``micro``
        threshold: (binary, multilabel) probability above which a label is predicted. Default: 0.5
        ignore_index: a target value that is not counted. Default: None

    Shape:
        - outputs: ``(N, C)`` or ``(N, C, d1, ...)`` class scores; ``(N)`` / ``(N, 1)`` logits (binary);
          ``(N, L)`` logits (multilabel). Probabilities in [0, 1] are read as they are.
        - targets: ``(N)`` or ``(N, d1, ...)`` class indices (or class probabilities shaped as outputs); 0/1.
    """

    def __init__(self, task: str = "multiclass", top_k: int = 1, average: Average = "micro", threshold: float = 0.5,
                 ignore_index: Optional[int] = None):
        if top_k < 1:
            raise ValueError(f"top_k must be a positive integer, but got top_k={top_k}")
        if top_k > 1 and task not in ("multiclass", "segmentation"):
            raise ValueError(f"top_k is for class scores (multiclass), but the task is {task}")
        if top_k > 1 and average != "micro":
            raise ValueError(f"top_k={top_k} counts samples: it needs average: micro, but got average: {average}")
        self.top_k = top_k
        super().__init__(task, average, threshold, ignore_index)

    def reset(self, device: torch.device) -> None:
        super().reset(device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.total = torch.zeros((), dtype=torch.int64, device=device)

    def states(self) -> list[torch.Tensor]:
        return [self.correct, self.total] if self.top_k > 1 else super().states()

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        if self.top_k == 1:
            return super().update(outputs, targets)
        outputs, targets = adapt_to_task(self.task, outputs, targets)
        if self.top_k > outputs.shape[1]:
            raise ValueError(f"top_k={self.top_k} is more than the {outputs.shape[1]} classes the model outputs")
        if targets.is_floating_point():
            targets = targets.argmax(dim=1)
        counted = (targets >= 0) & (targets < outputs.shape[1])  # as in the confusion matrix: -100, 255 count nowhere
        if self.ignore_index is not None:
            counted &= targets != self.ignore_index
        hits = (outputs.topk(self.top_k, dim=1).indices == targets.unsqueeze(1)).any(dim=1) & counted
        self.correct += hits.sum()
        self.total += counted.sum()

    def compute(self) -> torch.Tensor:
        if self.top_k > 1:
            return self.correct.float() / self.total.float()
        return super().compute()

    def score(self, tp, fp, fn, tn):
        if self.per_label:
            return _divide(tp + tn, tp + fp + fn + tn)
        return _divide(tp, tp + fn)  # per class: its recall; micro: right / all


class Precision(_ConfusionMetric):
    """Precision, tp / (tp + fp): of the samples predicted as a class, the fraction that are.

    Args:
        average: ``macro`` (mean over classes), ``micro`` (from summed counts), ``weighted`` (by support)
            or ``none`` (one value per class). Binary: the positive class. Default: ``macro``
        threshold: (binary, multilabel) probability above which a label is predicted. Default: 0.5
        ignore_index: a target value that is not counted. Default: None
    """

    def __init__(self, task: str = "multiclass", average: Average = "macro", threshold: float = 0.5,
                 ignore_index: Optional[int] = None):
        super().__init__(task, average, threshold, ignore_index)

    def score(self, tp, fp, fn, tn):
        return _divide(tp, tp + fp)


class Recall(_ConfusionMetric):
    """Recall, tp / (tp + fn): of the samples of a class, the fraction predicted as it.

    Args:
        average: ``macro``, ``micro``, ``weighted`` or ``none`` (as precision). Default: ``macro``
        threshold: (binary, multilabel) probability above which a label is predicted. Default: 0.5
        ignore_index: a target value that is not counted. Default: None
    """

    def __init__(self, task: str = "multiclass", average: Average = "macro", threshold: float = 0.5,
                 ignore_index: Optional[int] = None):
        super().__init__(task, average, threshold, ignore_index)

    def score(self, tp, fp, fn, tn):
        return _divide(tp, tp + fn)


class F1Score(_ConfusionMetric):
    """F1 score, 2 tp / (2 tp + fp + fn): the harmonic mean of precision and recall.

    Args:
        average: ``macro``, ``micro``, ``weighted`` or ``none`` (as precision). Default: ``macro``
        threshold: (binary, multilabel) probability above which a label is predicted. Default: 0.5
        ignore_index: a target value that is not counted. Default: None
    """

    def __init__(self, task: str = "multiclass", average: Average = "macro", threshold: float = 0.5,
                 ignore_index: Optional[int] = None):
        super().__init__(task, average, threshold, ignore_index)

    def score(self, tp, fp, fn, tn):
        return _divide(2 * tp, 2 * tp + fp + fn)


class JaccardIndex(_ConfusionMetric):
    """Intersection over union (Jaccard index), tp / (tp + fp + fn); macro: the mean IoU over classes.

    Args:
        average: ``macro`` (mean IoU), ``micro``, ``weighted`` or ``none`` (one IoU per class). Default: ``macro``
        threshold: (binary, multilabel) probability above which a label is predicted. Default: 0.5
        ignore_index: a target value that is not counted (e.g. 255 for unlabelled pixels). Default: None
    """

    def __init__(self, task: str = "multiclass", average: Average = "macro", threshold: float = 0.5,
                 ignore_index: Optional[int] = None):
        super().__init__(task, average, threshold, ignore_index)

    def score(self, tp, fp, fn, tn):
        return _divide(tp, tp + fp + fn)


class ConfusionMatrix(_ConfusionMetric):
    """The confusion matrix: rows are targets, columns predictions; ``(L, 2, 2)`` for multilabel.

    Args:
        normalize: ``none`` (counts), ``true`` (each row sums to 1), ``pred`` (each column) or ``all``. Default: ``none``
        threshold: (binary, multilabel) probability above which a label is predicted. Default: 0.5
        ignore_index: a target value that is not counted. Default: None
    """

    def __init__(self, task: str = "multiclass", normalize: Literal["none", "true", "pred", "all"] = "none",
                 threshold: float = 0.5, ignore_index: Optional[int] = None):
        self.normalize = normalize
        super().__init__(task, "none", threshold, ignore_index)

    @property
    def scalar(self) -> bool:
        return False

    def compute(self) -> torch.Tensor:
        if self.matrix is None:
            return torch.tensor(float("nan"))
        m = self.matrix.to(float_state_dtype(self.matrix.device))
        if self.task == "binary":
            m = m[0]
        if self.normalize == "true":
            m = _divide(m, m.sum(dim=-1, keepdim=True))
        elif self.normalize == "pred":
            m = _divide(m, m.sum(dim=-2, keepdim=True))
        elif self.normalize == "all":
            m = _divide(m, m.sum(dim=(-2, -1), keepdim=True))
        return m.float()
