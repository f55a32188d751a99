"""Metrics on small known examples: values by hand, exact across batches, no host sync, summable states."""

from __future__ import annotations


import pytest
import torch

from declarative.training.metrics import (Accuracy, ConfusionMatrix, F1Score, JaccardIndex, MeanAbsoluteError,
                                          MeanSquaredError, Precision, R2Score, Recall, StageMetrics)

# Targets and predictions of 8 samples over 4 classes; class 3 is neither a target nor predicted.
TARGET = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
PREDICTED = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0])
# By hand: class 0: tp 2, fp 1, fn 1; class 1: tp 1, fp 1, fn 1; class 2: tp 2, fp 1, fn 1.
PRECISION = [2 / 3, 1 / 2, 2 / 3]
RECALL = [2 / 3, 1 / 2, 2 / 3]
F1 = [2 / 3, 1 / 2, 2 / 3]
IOU = [2 / 4, 1 / 3, 2 / 4]


def scores(predicted: torch.Tensor, classes: int = 4) -> torch.Tensor:
    return torch.nn.functional.one_hot(predicted, classes).float() * 3 - 1  # logits whose argmax is `predicted`


def fed(metric, batches=((0, 3), (3, 8))):
    """`metric` after the samples in uneven batches (3, then 5)."""
    metric.reset(torch.device("cpu"))
    for start, end in batches:
        metric.update(scores(PREDICTED[start:end]), TARGET[start:end])
    return metric.compute()


@pytest.mark.parametrize("metric, expected", [
    (Precision(), sum(PRECISION) / 3),  # macro over the 3 classes present: class 3 has no score
    (Recall(), sum(RECALL) / 3),
    (F1Score(), sum(F1) / 3),
    (JaccardIndex(), sum(IOU) / 3),
    (F1Score(average="micro"), 5 / 8),
    (F1Score(average="weighted"), (3 * F1[0] + 2 * F1[1] + 3 * F1[2]) / 8),
    (Accuracy(), 5 / 8),
    (Accuracy(average="macro"), sum(RECALL) / 3),
    (JaccardIndex(average="micro"), 5 / (5 + 3 + 3)),
])
def test_classification_values_match_counts_by_hand(metric, expected):
    assert fed(metric).item() == pytest.approx(expected)


def test_average_none_gives_one_value_per_class_and_zero_for_an_absent_class():
    assert fed(Precision(average="none")).tolist() == pytest.approx(PRECISION + [0.0])
    assert fed(JaccardIndex(average="none")).tolist() == pytest.approx(IOU + [0.0])


def test_confusion_matrix_counts_targets_by_row_and_predictions_by_column():
    assert fed(ConfusionMatrix()).tolist() == [[2, 1, 0, 0], [0, 1, 1, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert fed(ConfusionMatrix(normalize="true")).tolist()[1] == pytest.approx([0, 0.5, 0.5, 0])


def test_binary_reads_logits_or_probabilities_with_the_threshold():
    target = torch.tensor([1, 0, 1, 1])
    logits = torch.tensor([[2.0], [-1.0], [-0.5], [0.3]])  # predicted: 1, 0, 0, 1
    for outputs in (logits, logits.sigmoid()):
        f1 = F1Score(task="binary")
        f1.update(outputs, target)
        assert f1.compute().item() == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))
    strict = Accuracy(task="binary", threshold=0.6)
    strict.update(logits.sigmoid(), target)  # sigmoid(0.3) = 0.57 is no longer a 1
    assert strict.compute().item() == pytest.approx(2 / 4)


def test_multilabel_counts_each_label():
    target = torch.tensor([[1, 0], [1, 1], [0, 1]])
    logits = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]])
    recall = Recall(task="multilabel", average="none")
    recall.update(logits[:2], target[:2])
    recall.update(logits[2:], target[2:])
    assert recall.compute().tolist() == pytest.approx([1.0, 0.5])
    accuracy = Accuracy(task="multilabel")
    accuracy.update(logits, target)
    assert accuracy.compute().item() == pytest.approx(4 / 6)


def test_regression_sums_are_exact_over_uneven_batches():
    outputs = torch.tensor([1.0, 2.0, 4.0, 3.0, 0.0])
    target = torch.tensor([1.5, 2.0, 3.0, 5.0, 1.0])
    r2 = 1 - ((outputs - target) ** 2).sum() / ((target - target.mean()) ** 2).sum()
    for metric, expected in ((MeanSquaredError(), ((outputs - target) ** 2).mean()),
                             (MeanAbsoluteError(), (outputs - target).abs().mean()), (R2Score(), r2)):
        metric.update(outputs[:1, None], target[:1])  # (N, 1) outputs meet (N,) targets
        metric.update(outputs[1:, None], target[1:])
        assert metric.compute().item() == pytest.approx(expected.item())


def test_states_of_two_processes_add_up_to_the_states_of_one():
    """What all_reduce(SUM) on `states()` does in a distributed run."""
    whole = StageMetrics("val", {"f1": F1Score(), "iou": JaccardIndex(average="none")})
    parts = [StageMetrics("val", {"f1": F1Score(), "iou": JaccardIndex(average="none")}) for _ in range(2)]
    for metrics in (whole, *parts):
        metrics.reset(torch.device("cpu"))
    whole.update(torch.tensor(1.0), scores(PREDICTED), TARGET)
    parts[0].update(torch.tensor(1.0), scores(PREDICTED[:3]), TARGET[:3])
    parts[1].update(torch.tensor(1.0), scores(PREDICTED[3:]), TARGET[3:])
    for total, other in zip(parts[0].states(), parts[1].states()):
        total += other
    assert parts[0].compute() == whole.compute()


def test_stage_metrics_reads_scalars_and_per_class_values_in_one_compute():
    metrics = StageMetrics("val", {"f1": F1Score(), "iou_none": JaccardIndex(average="none"),
                                   "confusion_matrix": ConfusionMatrix()})
    assert metrics.names == ["val/loss", "val/f1"]
    assert metrics.tables == ["val/iou_none", "val/confusion_matrix"]
    metrics.reset(torch.device("cpu"))
    metrics.update(torch.tensor(0.5), scores(PREDICTED), TARGET)
    values = metrics.compute()
    assert values["val/iou_none"] == pytest.approx(IOU + [0.0])
    assert values["val/confusion_matrix"][0] == [2.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("metric, outputs, target", [
    (Accuracy(top_k=2), torch.randn(6, 4), torch.randint(0, 4, (6,))),
    (F1Score(), torch.randn(6, 4), torch.randint(0, 4, (6,))),
    (JaccardIndex(task="segmentation", ignore_index=255), torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))),
    (ConfusionMatrix(task="binary"), torch.randn(6, 1), torch.randint(0, 2, (6,))),
    (Precision(task="multilabel"), torch.randn(6, 3), torch.randint(0, 2, (6, 3))),
    (R2Score(), torch.randn(6, 2), torch.randn(6, 2)),
    (MeanSquaredError(), torch.randn(6, 1), torch.randn(6)),
])
def test_updates_never_read_from_the_device(request, metric, outputs, target):
    metric.reset(torch.device("cpu"))
    reads = request.getfixturevalue("host_reads")  # counting starts after the reset
    metric.update(outputs, target)
    metric.update(outputs, target)
    metric.compute()
    assert reads == []


@pytest.mark.parametrize("metric", [MeanSquaredError(), MeanAbsoluteError(), R2Score()])
def test_regression_metrics_take_the_empty_batch_that_sizes_their_states_in_a_multi_process_run(metric):
    # a process of a multi-process run sizes every metric's states with a batch of no samples before any other
    stage = StageMetrics("val", {"m": metric}, lambda device: (torch.zeros(0, 2), torch.zeros(0, 2)))
    stage.reset(torch.device("cpu"))
    outputs, target = torch.randn(6, 2), torch.randn(6, 2)
    fresh = type(metric)()
    fresh.reset(torch.device("cpu"))
    fresh.update(outputs, target)
    assert [state.shape for state in metric.states()] == [state.shape for state in fresh.states()]
    metric.update(outputs, target)
    assert torch.allclose(metric.compute(), fresh.compute())


def test_a_metric_names_what_it_cannot_read():
    with pytest.raises(ValueError, match=r"multiclass needs integer class targets of shape \[6\] for outputs of "
                                         r"shape \[6, 3\], but got float32 targets of shape \[6\]"):
        Accuracy().update(torch.randn(6, 3), torch.randn(6))
    with pytest.raises(ValueError, match="top_k is for class scores"):
        Accuracy(task="binary", top_k=2)
    with pytest.raises(ValueError, match="MeanSquaredError is for regression outputs, but the task is multiclass"):
        MeanSquaredError(task="multiclass")
