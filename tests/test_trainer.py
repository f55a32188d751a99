"""The training loop as a user sees it: what runs, in which order, for how long, and what it reports."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
import torch
import yaml
from rich.console import Console

import declarative.run as run_module
from declarative.callbacks import Callback
from declarative.errors import SpecError
from declarative.model.builder import build_model
from declarative.run import build_scheduler
from declarative.training.checkpoint import load_checkpoint
from declarative.training.metrics import Accuracy, StageMetrics
from declarative.training.seed import reproducible
from trainer_specs import make_spec, quiet, results, run


class Recorder(Callback):
    """Records the hooks the trainer calls, in order, with the counters at that moment."""

    def __init__(self):
        self.events: list[tuple[str, int, bool]] = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            def record(trainer, model, *args):
                self.events.append((name, trainer.global_step, trainer.sanity_checking))
            return record
        return super().__getattribute__(name)

    def count(self, hook: str, *, sanity: bool | None = None) -> int:
        return sum(1 for name, _, s in self.events if name == hook and (sanity is None or s == sanity))

    def names(self) -> list[str]:
        return [name for name, _, _ in self.events]


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    """A Recorder added to the callbacks of every `fit_spec` in the test."""
    recorder = Recorder()
    build = run_module.build_callbacks
    monkeypatch.setattr(run_module, "build_callbacks", lambda spec: build(spec) + [recorder])
    return recorder


def test_fit_reports_val_and_test_metrics_and_records_the_resolved_spec(tmp_path):
    result = run(tmp_path)
    assert result.epochs == 2 and result.global_step == 6  # 3 batches per epoch
    assert set(result.val_metrics) == {"val/loss", "val/accuracy"}
    assert set(result.test_metrics) == {"test/loss", "test/accuracy"}
    saved = results(result)
    assert saved["val"] == result.val_metrics and saved["test"] == result.test_metrics
    assert saved["run_dir"] == str(result.run_dir)
    spec = make_spec(tmp_path)
    assert yaml.safe_load((result.run_dir / "spec.yaml").read_text()) == spec.to_dict()


def test_training_learns_the_separable_problem(tmp_path):
    result = run(tmp_path, "trainer.max_epochs=15")
    assert result.val_metrics["val/accuracy"] > 0.8


def test_accuracy_counts_samples_not_batch_means():
    metrics = StageMetrics("val", {"accuracy": Accuracy()})
    metrics.reset(torch.device("cpu"))
    three_right = torch.eye(3), torch.tensor([0, 1, 2])
    one_wrong = torch.eye(3)[:1], torch.tensor([2])
    metrics.update(torch.tensor(1.0), *three_right)
    metrics.update(torch.tensor(5.0), *one_wrong)
    values = metrics.compute()
    assert values["val/accuracy"] == pytest.approx(3 / 4)  # a mean of batch means would say 1/2
    assert values["val/loss"] == pytest.approx((1.0 * 3 + 5.0 * 1) / 4)  # weighted by batch size


def test_accuracy_takes_top_k_and_class_probability_targets():
    accuracy = Accuracy(top_k=2)
    scores = torch.tensor([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]])
    accuracy.update(scores, torch.tensor([2, 2]))  # 2 is 2nd-best for the first, last for the second
    assert accuracy.compute().item() == pytest.approx(0.5)
    plain = Accuracy()
    plain.update(scores, torch.tensor([[0.0, 0.9, 0.1], [0.0, 0.0, 1.0]]))
    assert plain.compute().item() == pytest.approx(0.5)


def test_a_metric_that_cannot_read_the_outputs_is_reported_at_its_spec_line(tmp_path, recorder):
    with pytest.raises(SpecError) as caught:
        run(tmp_path, "metrics=[{accuracy: {top_k: 5}}]")
    message = str(caught.value)
    assert "top_k=5 is more than the 3 classes" in message
    assert "override 'metrics=" in message
    assert recorder.count("on_train_batch_end") == 0  # found by the sanity check


def test_training_steps_read_from_the_device_only_when_they_log(tmp_path, monkeypatch, host_reads):
    """Fast by default: a step that does not log never waits for the device (.item(), .tolist(), float(), ...)."""
    reads = host_reads

    class ReadsPerStep(Callback):
        def __init__(self):
            self.mark, self.per_step = 0, []

        def on_train_epoch_start(self, trainer, model):
            self.mark = len(reads)

        def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
            self.per_step.append((trainer.global_step, len(reads) - self.mark))
            self.mark = len(reads)

    counter = ReadsPerStep()
    build = run_module.build_callbacks
    monkeypatch.setattr(run_module, "build_callbacks", lambda spec: build(spec) + [counter])
    run(tmp_path, "trainer.log_every_n_steps=2", "callbacks=[LearningRateMonitor, {ModelCheckpoint: "
        "{monitor: val/loss}}, {EarlyStopping: {monitor: val/accuracy, mode: max}}]",
        "scheduler={OneCycleLR: {max_lr: 1.0}, interval: step}", "trainer.gradient_clip_val=1.0")
    assert counter.per_step == [(1, 0), (2, 1), (3, 0), (4, 1), (5, 0), (6, 1)]


def test_sanity_validation_runs_before_training_and_is_not_logged(tmp_path, recorder):
    result = run(tmp_path, "trainer.num_sanity_val_steps=1", "trainer.max_epochs=1")
    names = recorder.names()
    assert names.index("on_sanity_check_start") < names.index("on_sanity_check_end") < names.index("on_train_start")
    assert recorder.count("on_validation_batch_end", sanity=True) == 1
    assert recorder.count("on_validation_batch_end", sanity=False) == 2
    with open(result.run_dir / "metrics.csv") as file:
        val_rows = [row for row in csv.DictReader(file) if row["val/loss"]]
    assert len(val_rows) == 1  # the epoch's validation; the sanity check logs nothing


def test_broken_validation_fails_before_any_training_step(tmp_path, recorder):
    # Class probabilities of the wrong shape: (8,) for a 3-class model's (8, 3) scores.
    np.savez(tmp_path / "val.npz", inputs=np.zeros((8, 4), np.float32), targets=np.full(8, 0.5, np.float32))
    with pytest.raises(SpecError) as caught:
        run(tmp_path, "data.val={source: {ArrayFile: {path: val.npz}}}")
    # The validation targets cannot meet the model's outputs: caught before the first training step.
    assert "needs integer class targets" in str(caught.value), caught.value
    assert recorder.count("on_train_batch_end") == 0


def test_a_sanity_check_failure_in_the_loss_points_at_the_loss(tmp_path):
    with pytest.raises(SpecError) as caught:
        run(tmp_path, "loss={CrossEntropyLoss: {weight: [1.0, 2.0]}}")  # 2 class weights for 3 classes
    assert "override 'loss=" in str(caught.value) and "weight" in str(caught.value)


def test_max_steps_stops_mid_epoch_and_still_validates(tmp_path, recorder):
    result = run(tmp_path, "trainer.max_steps=4", "trainer.max_epochs=null")
    assert result.global_step == 4
    assert result.epochs == 2  # one full epoch of 3 steps, then 1 step of the second
    assert recorder.count("on_validation_end", sanity=False) == 2


def test_limit_batches_take_counts_and_fractions(tmp_path, recorder):
    result = run(tmp_path, "trainer.limit_train_batches=2", "trainer.limit_val_batches=0.5",
                 "trainer.limit_test_batches=1", "trainer.num_sanity_val_steps=0")
    assert result.global_step == 4  # 2 batches x 2 epochs
    assert recorder.count("on_validation_batch_end") == 2  # 1 of 2 batches, twice
    assert recorder.count("on_test_batch_end") == 1


def test_a_fraction_above_one_is_a_located_error(tmp_path):
    with pytest.raises(SpecError, match="limit_train_batches=1.5 is a fraction above 1.0"):
        run(tmp_path, "trainer.limit_train_batches=1.5")


def test_accumulate_grad_batches_steps_once_per_window(tmp_path):
    result = run(tmp_path, "trainer.accumulate_grad_batches=2")
    assert result.global_step == 4  # 3 batches → windows of 2 and 1, per epoch


def test_gradient_clipping_bounds_each_step(tmp_path):
    spec = make_spec(tmp_path, "trainer.gradient_clip_val=1.0e-6", "optimizer={SGD: {lr: 1.0}}")
    with reproducible(spec.seed):
        initial = build_model(spec).state_dict()
    for algorithm in ("norm", "value"):
        result = run(tmp_path, "trainer.gradient_clip_val=1.0e-6", "optimizer={SGD: {lr: 1.0}}",
                     f"trainer.gradient_clip_algorithm={algorithm}")
        final = load_checkpoint(result.run_dir / "checkpoints" / "last.ckpt")["state_dict"]
        moved = torch.cat([(final[k] - initial[k]).flatten() for k in initial])
        bound = 6 * 1.0e-6 * (1 if algorithm == "norm" else math.sqrt(moved.numel()))
        assert 0 < moved.norm().item() <= bound * 1.001


def test_seeded_runs_give_identical_weights(tmp_path):
    def weights(*overrides):
        result = run(tmp_path, *overrides)
        return load_checkpoint(result.run_dir / "checkpoints" / "last.ckpt")["state_dict"]

    first, second, other_seed = weights(), weights(), weights("seed=1")
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other_seed[k]) for k in first)


def test_deterministic_runs_repeat_and_leave_the_global_setting_as_it_was(tmp_path):
    before = torch.are_deterministic_algorithms_enabled()
    a = run(tmp_path, "trainer.deterministic=true")
    b = run(tmp_path, "trainer.deterministic=true")
    assert a.val_metrics == b.val_metrics
    assert torch.are_deterministic_algorithms_enabled() == before


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed", "64-true"])
def test_other_precisions_train_on_cpu(tmp_path, precision):
    result = run(tmp_path, f"trainer.precision={precision}")
    assert all(math.isfinite(v) for v in result.val_metrics.values())
    weights = load_checkpoint(result.run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    expected = torch.float64 if precision == "64-true" else torch.float32  # mixed precision keeps float32 weights
    assert all(w.dtype == expected for w in weights.values())


def test_reduce_lr_on_plateau_steps_on_its_monitor(tmp_path):
    # mode max on a falling loss: no improvement from the second epoch on, so the rate halves each epoch.
    result = run(tmp_path, "trainer.max_epochs=3",
                 "scheduler={ReduceLROnPlateau: {mode: max, patience: 0, factor: 0.5}, monitor: train/loss}",
                 "callbacks=[{LearningRateMonitor: {logging_interval: epoch}}]")
    with open(result.run_dir / "metrics.csv") as file:
        rates = [float(row["lr-SGD"]) for row in csv.DictReader(file) if row["lr-SGD"]]
    assert rates == [0.5, 0.5, 0.25]


def test_reduce_lr_on_plateau_with_a_metric_never_logged_is_a_located_error(tmp_path, recorder):
    with pytest.raises(SpecError) as caught:
        run(tmp_path, "trainer.limit_val_batches=0", "scheduler={ReduceLROnPlateau: {}, monitor: val/loss}")
    assert "ReduceLROnPlateau monitor 'val/loss' needs validation" in str(caught.value)
    assert recorder.count("on_train_batch_end") == 0


def test_schedule_lengths_are_inferred_from_the_trainer_settings(tmp_path):
    params = [torch.nn.Parameter(torch.zeros(1))]
    one_cycle = make_spec(tmp_path, "trainer.max_epochs=4", "scheduler={OneCycleLR: {max_lr: 0.1}, interval: step}")
    assert build_scheduler(one_cycle, torch.optim.SGD(params, lr=0.1), num_train_batches=3).total_steps == 12
    cosine = make_spec(tmp_path, "trainer.max_epochs=4", "scheduler={CosineAnnealingLR: {}, frequency: 2}")
    assert build_scheduler(cosine, torch.optim.SGD(params, lr=0.1), num_train_batches=3).T_max == 2
    # and a whole run with a step-wise OneCycleLR never steps past its end
    run(tmp_path, "scheduler={OneCycleLR: {max_lr: 0.1}, interval: step}", "trainer.accumulate_grad_batches=2")


def test_plain_console_gets_one_line_per_epoch_and_a_results_table(tmp_path):
    console = quiet()
    run(tmp_path, "trainer.enable_progress_bar=true", console=console)
    lines = console.file.getvalue().splitlines()
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert [line.split("  ")[0] for line in epoch_lines] == ["epoch 1/2", "epoch 2/2"]
    assert "train/loss" in epoch_lines[0] and "val/accuracy" in epoch_lines[0]
    assert any("test/accuracy" in line for line in lines)


def test_disabled_progress_bar_prints_only_the_results(tmp_path):
    console = quiet()
    run(tmp_path, console=console)
    text = console.file.getvalue()
    assert "epoch 1" not in text and "val/loss" in text


def test_terminal_console_gets_a_live_progress_bar(tmp_path):
    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    run(tmp_path, "trainer.enable_progress_bar=true", "trainer.log_every_n_steps=1", console=console)
    text = console.file.getvalue()
    assert "epoch 2/2" in text and "train/loss_step" in text and "test" in text
