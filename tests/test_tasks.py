"""Each task trains through the real `fit_spec` on .npz files the test writes.

The validation file has 30 samples in batches of 8 (8, 8, 8, 6), so a metric that averaged batch
means instead of counting samples would show. Reference values come from the weights in the run's
last.ckpt, the embedded spec and plain torch arithmetic over the whole validation file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from declarative.errors import SpecError
from declarative.model.builder import build_model
from declarative.run import RunResult, fit_spec
from declarative.spec.validate import load_spec, spec_from_data
from declarative.training.checkpoint import load_checkpoint
from trainer_specs import quiet

SPEC = """\
name: {task}
seed: 0
data:
  source: {{ArrayFile: {{path: train.npz}}}}
  val: {{source: {{ArrayFile: {{path: val.npz}}}}}}
  batch_size: 8
model:
  input: {input}
  layers: {layers}
optimizer: {{SGD: {{lr: 0.1}}}}
trainer: {{max_epochs: 1, accelerator: cpu, enable_progress_bar: false}}
logger: false
{extra}"""

# task → (one sample's input shape, the model's layers, targets for n samples)
TASKS = {
    "multiclass": ([4], "[{Linear: {out_features: 3}}]", lambda rng, n: rng.integers(0, 3, size=n)),
    "binary": ([4], "[{Linear: {out_features: 1}}]", lambda rng, n: rng.integers(0, 2, size=n)),
    "multilabel": ([4], "[{Linear: {out_features: 3}}]", lambda rng, n: rng.integers(0, 2, size=(n, 3))),
    "regression": ([4], "[{Linear: {out_features: 1}}]", lambda rng, n: rng.normal(size=n).astype(np.float32)),
    "segmentation": ([1, 6, 6], "[{Conv2d: {out_channels: 3, kernel_size: 3, padding: 1}}]",
                     lambda rng, n: rng.integers(0, 3, size=(n, 6, 6)).astype(np.uint8)),  # masks are often uint8
}
DEFAULTS = {
    "multiclass": ("CrossEntropyLoss", ["accuracy"]),
    "binary": ("BCEWithLogitsLoss", ["accuracy", "f1"]),
    "multilabel": ("BCEWithLogitsLoss", ["accuracy", "f1"]),
    "regression": ("MSELoss", ["mse", "mae", "r2"]),
    "segmentation": ("CrossEntropyLoss", ["iou", "accuracy"]),
}


def write_task(folder: Path, task: str, extra: str = "", *, targets=None, layers: str | None = None) -> Path:
    """train.npz (40 samples), val.npz (30) and spec.yaml for `task`; returns the spec's path."""
    shape, default_layers, make_targets = TASKS[task]
    rng = np.random.default_rng(1)
    make_targets = targets or make_targets
    for name, n in (("train.npz", 40), ("val.npz", 30)):
        np.savez(folder / name, inputs=rng.normal(size=(n, *shape)).astype(np.float32), targets=make_targets(rng, n))
    path = folder / "spec.yaml"
    path.write_text(SPEC.format(task=task, input=shape, layers=layers or default_layers, extra=extra))
    return path


def run_task(folder: Path, task: str, extra: str = "", **kwargs) -> RunResult:
    path = write_task(folder, task, extra, **kwargs)
    return fit_spec(load_spec(path, [f"trainer.default_root_dir={folder / 'runs'}"]), console=quiet())


def val_outputs(result: RunResult, folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's outputs on the whole validation file (weights from last.ckpt, model from its spec), and the targets."""
    contents = load_checkpoint(result.last_model_path)
    model = build_model(spec_from_data(contents["spec"], origin="last.ckpt"))
    model.load_state_dict(contents["state_dict"])
    val = np.load(folder / "val.npz")
    with torch.no_grad():
        return model.eval()(torch.from_numpy(val["inputs"])), torch.from_numpy(val["targets"])


def counts(predicted: torch.Tensor, target: torch.Tensor, classes: int) -> list[tuple[int, int, int]]:
    """(tp, fp, fn) of each class, counted one by one."""
    return [(int(((predicted == c) & (target == c)).sum()), int(((predicted == c) & (target != c)).sum()),
             int(((predicted != c) & (target == c)).sum())) for c in range(classes)]


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def results(result: RunResult) -> dict:
    return json.loads((result.run_dir / "results.json").read_text())


@pytest.mark.parametrize("task", list(TASKS))
def test_each_task_is_inferred_from_the_data_with_its_default_loss_and_metrics(tmp_path, task):
    result = run_task(tmp_path, task)
    loss, metrics = DEFAULTS[task]
    assert list(results(result)["val"]) == ["val/loss"] + [f"val/{name}" for name in metrics]
    recorded = yaml.safe_load((result.run_dir / "spec.yaml").read_text())
    assert (recorded["task"], recorded["loss"], recorded["metrics"]) == (task, loss, metrics)
    embedded = load_checkpoint(result.last_model_path)["spec"]
    assert (embedded["task"], embedded["loss"], embedded["metrics"]) == (task, loss, metrics)


def test_multiclass_metrics_match_a_count_of_each_class(tmp_path):
    result = run_task(tmp_path, "multiclass", "metrics: [accuracy, {accuracy: {top_k: 2}}, precision, recall, f1, "
                                              "{f1: {average: weighted}}, {recall: {average: none}}, confusion_matrix]")
    outputs, target = val_outputs(result, tmp_path)
    predicted = outputs.argmax(dim=1)
    per_class = counts(predicted, target, 3)
    present = [c for c in range(3) if sum(per_class[c])]  # a class neither seen nor predicted has no score
    support = [int((target == c).sum()) for c in range(3)]
    val = result.val_metrics
    assert val["val/accuracy"] == pytest.approx(float((predicted == target).float().mean()))
    top2 = (outputs.topk(2, dim=1).indices == target[:, None]).any(dim=1)
    assert val["val/accuracy_top2"] == pytest.approx(float(top2.float().mean()))
    assert val["val/precision"] == pytest.approx(
        np.mean([tp / (tp + fp) if tp + fp else 0.0 for tp, fp, _ in (per_class[c] for c in present)]))
    assert val["val/recall"] == pytest.approx(
        np.mean([tp / (tp + fn) if tp + fn else 0.0 for tp, _, fn in (per_class[c] for c in present)]))
    assert val["val/f1"] == pytest.approx(np.mean([f1(*per_class[c]) for c in present]))
    assert val["val/f1_weighted"] == pytest.approx(sum(f1(*per_class[c]) * support[c] for c in range(3)) / 30)
    assert val["val/recall_none"] == pytest.approx([tp / (tp + fn) if tp + fn else 0.0 for tp, _, fn in per_class])
    matrix = [[int(((target == t) & (predicted == p)).sum()) for p in range(3)] for t in range(3)]
    assert val["val/confusion_matrix"] == matrix
    assert sum(map(sum, matrix)) == 30


def test_binary_reads_one_logit_per_sample_and_float_targets_of_shape_n_by_1(tmp_path):
    result = run_task(tmp_path, "binary", "task: binary\nmetrics: [accuracy, f1, precision, recall, iou, "
                                          "confusion_matrix]",
                      targets=lambda rng, n: rng.integers(0, 2, size=(n, 1)).astype(np.float32))
    outputs, target = val_outputs(result, tmp_path)
    predicted, positive = outputs[:, 0] > 0, target[:, 0] > 0.5  # logit > 0 ⇔ probability > 0.5
    tp, fp = int((predicted & positive).sum()), int((predicted & ~positive).sum())
    fn, tn = int((~predicted & positive).sum()), int((~predicted & ~positive).sum())
    val = result.val_metrics
    assert val["val/accuracy"] == pytest.approx((tp + tn) / 30)
    assert val["val/f1"] == pytest.approx(f1(tp, fp, fn))
    assert val["val/precision"] == pytest.approx(tp / (tp + fp))
    assert val["val/recall"] == pytest.approx(tp / (tp + fn))
    assert val["val/iou"] == pytest.approx(tp / (tp + fp + fn))
    assert val["val/confusion_matrix"] == [[tn, fp], [fn, tp]]


def test_float_targets_are_inferred_as_regression_until_the_spec_names_the_task(tmp_path):
    result = run_task(tmp_path, "binary", targets=lambda rng, n: rng.integers(0, 2, size=n).astype(np.float32))
    assert results(result)["val"].keys() == {"val/loss", "val/mse", "val/mae", "val/r2"}


def test_multilabel_averages_each_label(tmp_path):
    result = run_task(tmp_path, "multilabel", "metrics: [accuracy, f1, {f1: {average: micro}}, {precision: "
                                              "{average: none}}]")
    outputs, target = val_outputs(result, tmp_path)
    predicted = (outputs > 0).long()
    per_label = [counts(predicted[:, label], target[:, label], 2)[1] for label in range(3)]
    val = result.val_metrics
    assert val["val/accuracy"] == pytest.approx(float((predicted == target).float().mean()))
    assert val["val/f1"] == pytest.approx(np.mean([f1(*c) for c in per_label]))
    assert val["val/f1_micro"] == pytest.approx(f1(*np.sum(per_label, axis=0)))
    assert val["val/precision_none"] == pytest.approx([tp / (tp + fp) if tp + fp else 0.0 for tp, fp, _ in per_label])


def test_regression_metrics_are_exact_over_all_samples_with_one_r2_per_output(tmp_path):
    result = run_task(tmp_path, "regression", layers="[{Linear: {out_features: 2}}]",
                      targets=lambda rng, n: (rng.normal(size=(n, 2)) * [1.0, 10.0] + [0.0, 5.0]).astype(np.float32))
    outputs, target = val_outputs(result, tmp_path)
    outputs, target = outputs.double(), target.double()
    error = outputs - target
    r2 = 1 - error.square().sum(dim=0) / (target - target.mean(dim=0)).square().sum(dim=0)
    val = result.val_metrics
    assert val["val/mse"] == pytest.approx(float(error.square().mean()), rel=1e-5)
    assert val["val/mae"] == pytest.approx(float(error.abs().mean()), rel=1e-5)
    assert val["val/r2"] == pytest.approx(float(r2.mean()), rel=1e-5)


def test_segmentation_iou_is_the_mean_over_classes_and_skips_the_ignored_border(tmp_path):
    def masks(rng, n):
        mask = rng.integers(0, 3, size=(n, 6, 6)).astype(np.uint8)
        mask[:, 0, :] = 255  # an unlabelled border, as VOC marks it
        return mask

    result = run_task(tmp_path, "segmentation", "loss: {CrossEntropyLoss: {ignore_index: 255}}\n"
                                                "metrics: [{iou: {ignore_index: 255}}, {accuracy: {ignore_index: 255}}, "
                                                "{iou: {average: none}}]", targets=masks)  # 255 >= C: skipped anyway
    outputs, target = val_outputs(result, tmp_path)
    predicted = outputs.argmax(dim=1)
    labelled = target != 255
    predicted, target = predicted[labelled], target[labelled].long()
    iou = [float(((predicted == c) & (target == c)).sum() / ((predicted == c) | (target == c)).sum()) for c in range(3)]
    val = result.val_metrics
    assert val["val/iou"] == pytest.approx(np.mean(iou))
    assert val["val/iou_none"] == pytest.approx(iou)
    assert val["val/accuracy"] == pytest.approx(float((predicted == target).float().mean()))
    assert yaml.safe_load((result.run_dir / "spec.yaml").read_text())["task"] == "segmentation"  # from the loss


def test_a_named_task_that_does_not_fit_the_data_is_an_error_at_the_task_line(tmp_path):
    path = write_task(tmp_path, "multilabel", "task: multiclass")
    with pytest.raises(SpecError) as caught:
        fit_spec(load_spec(path, [f"trainer.default_root_dir={tmp_path / 'runs'}"]), console=quiet())
    message = str(caught.value)
    assert message.startswith(f"{path}:13:7: multiclass needs integer class targets of shape [8] for outputs of "
                              "shape [8, 3], but got int64 targets of shape [8, 3]"), message
    assert not (tmp_path / "runs" / "multilabel" / "version_0").exists()


def test_data_that_leaves_the_task_open_asks_for_task(tmp_path):
    path = write_task(tmp_path, "multiclass", targets=lambda rng, n: rng.integers(0, 3, size=(n, 2)))
    with pytest.raises(SpecError, match=r"spec.yaml:4:11: cannot tell the task from int64 targets of shape \[2\] and "
                                        r"model outputs of shape \[3\] \(one sample each\): add task:"):
        fit_spec(load_spec(path, [f"trainer.default_root_dir={tmp_path / 'runs'}"]), console=quiet())


def dtrain(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "declarative", *map(str, args)], capture_output=True, text=True,
                            cwd=cwd, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_validate_knows_the_task_from_the_spec_or_its_loss(tmp_path):
    text = write_task(tmp_path, "binary").read_text()
    monitor = "callbacks: [{EarlyStopping: {monitor: val/f1, mode: max}}]\n"
    cases = {
        "named": ("task: binary\n", None),
        "from_the_loss": ("loss: BCEWithLogitsLoss\n", None),  # binary: one logit per sample
        "multiclass_loss": ("loss: CrossEntropyLoss\n", ":14:39: EarlyStopping monitor 'val/f1' is not a metric this "
                                                         "run logs"),
        "unfit_metric": ("task: regression\nmetrics: [accuracy]\n", ":14:11: metric 'accuracy' is for multiclass, "
                         "binary, multilabel, segmentation outputs, but this run's task is regression"),
        "from_the_data": ("", None),  # the task waits for the data: val/f1 is checked when the run starts
    }
    for name, (extra, _) in cases.items():
        (tmp_path / f"{name}.yaml").write_text(text + extra + monitor)
    result = dtrain("validate", *(f"{name}.yaml" for name in cases), cwd=tmp_path)
    assert result.returncode == 1
    reported = {Path(line.split(":")[0]).stem for line in result.stderr.splitlines()}
    assert reported == {"multiclass_loss", "unfit_metric"}, result.stderr
    for name, (_, message) in cases.items():
        if message:
            assert f"{name}.yaml{message}" in result.stderr


def test_a_monitor_of_an_unlogged_default_metric_fails_before_training(tmp_path):
    path = write_task(tmp_path, "multiclass", "callbacks: [{EarlyStopping: {monitor: val/f1, mode: max}}]")
    with pytest.raises(SpecError, match="monitor 'val/f1' is not a metric this run logs"):
        fit_spec(load_spec(path, [f"trainer.default_root_dir={tmp_path / 'runs'}"]), console=quiet())
    assert not (tmp_path / "runs" / "multiclass" / "version_0").exists()


def test_a_confusion_matrix_cannot_be_monitored(tmp_path):
    path = write_task(tmp_path, "multiclass", "metrics: [confusion_matrix]\n"
                                              "callbacks: [{ModelCheckpoint: {monitor: val/confusion_matrix}}]")
    with pytest.raises(SpecError, match="monitor 'val/confusion_matrix' is not one number"):
        load_spec(path)


def test_per_class_values_and_confusion_matrices_reach_every_output(tmp_path):
    """results.json: nested lists; metrics.csv and TensorBoard: one scalar per class; the console: tables."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = write_task(tmp_path, "multiclass", "metrics: [{recall: {average: none}}, confusion_matrix]")
    path.write_text(path.read_text().replace("logger: false\n", ""))
    console = quiet()
    result = fit_spec(load_spec(path, [f"trainer.default_root_dir={tmp_path / 'runs'}"]), console=console)
    saved = results(result)["val"]
    assert len(saved["val/recall_none"]) == 3 and len(saved["val/confusion_matrix"]) == 3
    header = (result.run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val/recall_none/0", "val/recall_none/2"} <= set(header)
    assert not [column for column in header if "confusion" in column]
    events = EventAccumulator(str(result.run_dir), size_guidance={"tensors": 0}).Reload()
    assert events.Scalars("val/recall_none/1")[-1].value == pytest.approx(saved["val/recall_none"][1])
    assert "val/confusion_matrix/text_summary" in events.Tags()["tensors"]
    shown = console.file.getvalue()
    assert "val/recall_none/2" in shown and "val/confusion_matrix: rows are targets, columns predictions" in shown


def test_class_labels_with_a_dim_of_one_are_read_as_class_indices(tmp_path):
    """(N, 1) int32 labels (a column from a table) and (N, 1, H, W) masks, as files often hold them."""
    result = run_task(tmp_path, "multiclass", targets=lambda rng, n: rng.integers(0, 3, size=(n, 1)).astype(np.int32))
    outputs, target = val_outputs(result, tmp_path)
    assert result.val_metrics["val/accuracy"] == pytest.approx(float((outputs.argmax(1) == target[:, 0]).float().mean()))
    (tmp_path / "masks").mkdir()
    result = run_task(tmp_path / "masks", "segmentation",
                      targets=lambda rng, n: rng.integers(0, 3, size=(n, 1, 6, 6)).astype(np.uint8))
    outputs, target = val_outputs(result, tmp_path / "masks")
    assert yaml.safe_load((result.run_dir / "spec.yaml").read_text())["task"] == "segmentation"
    assert result.val_metrics["val/accuracy"] == pytest.approx(float((outputs.argmax(1) == target[:, 0]).float().mean()))
