"""Lightning's Trainer arguments as Lightning's docs write them: spellings, -1 for "no limit", modes."""

from __future__ import annotations

import warnings

import pytest
import torch

import declarative.run as run_module
from declarative.callbacks import Callback
from declarative.errors import SpecError
from declarative.training.checkpoint import load_checkpoint
from declarative.training.precision import select_precision
from trainer_specs import make_spec, quiet, run


@pytest.mark.parametrize("written, meant", [("16", "16-mixed"), ("'16'", "16-mixed"), ("bf16", "bf16-mixed"),
                                            ("32", "32-true"), ("64", "64-true"), ("bf16-true", "bf16-true"),
                                            ("16-true", "16-true")])
def test_every_lightning_precision_spelling_validates_and_means_what_lightning_means(tmp_path, written, meant):
    spec = make_spec(tmp_path, f"trainer.precision={written}")
    assert select_precision(spec.trainer.precision, "cpu").name == meant


def test_bf16_true_trains_with_bfloat16_weights(tmp_path):
    result = run(tmp_path, "trainer.precision=bf16-true")
    weights = load_checkpoint(result.run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(w.dtype == torch.bfloat16 for w in weights.values())


def test_minus_one_means_no_limit_as_in_lightning(tmp_path, monkeypatch):
    result = run(tmp_path, "trainer.max_epochs=-1", "trainer.max_steps=7")
    assert result.global_step == 7  # only max_steps bounds the run: 3 epochs of 3 steps, cut at 7
    result = run(tmp_path, "trainer.max_epochs=2", "trainer.max_steps=-1")
    assert result.global_step == 6
    with pytest.raises(SpecError, match="max_epochs must be an integer >= 1 or -1 or null, got 0"):
        make_spec(tmp_path, "trainer.max_epochs=0")


class ValidationBatches(Callback):
    """Counts the batches of each validation run."""

    def __init__(self):
        self.runs: list[int] = []

    def on_validation_start(self, trainer, model):
        self.runs.append(0)

    def on_validation_batch_end(self, trainer, model, outputs, batch, batch_idx):
        self.runs[-1] += 1


def test_all_validation_batches_in_the_sanity_check_with_minus_one(tmp_path, monkeypatch):
    counter = ValidationBatches()
    build = run_module.build_callbacks
    monkeypatch.setattr(run_module, "build_callbacks", lambda spec: build(spec) + [counter])
    run(tmp_path, "trainer.num_sanity_val_steps=-1", "trainer.max_epochs=1")
    assert counter.runs == [2, 2]  # the sanity check ran both validation batches, then the epoch's validation


def test_a_schedule_that_follows_an_unbounded_run_is_a_located_error(tmp_path):
    with pytest.raises(SpecError, match="this run has no limit"):
        run(tmp_path, "trainer.max_epochs=-1", "scheduler={CosineAnnealingLR: {}}")


def test_deterministic_warn_and_no_inference_mode_train(tmp_path):
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = run(tmp_path, "trainer.deterministic=warn", "trainer.inference_mode=false", "trainer.benchmark=false")
    b = run(tmp_path, "trainer.deterministic=true")
    assert a.val_metrics == pytest.approx(b.val_metrics)
    assert (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) \
        == before


def test_the_description_is_kept_in_the_record_and_the_checkpoints(tmp_path):
    result = run(tmp_path, "description='baseline, lr sweep 1 of 4'")
    record = (result.run_dir / "spec.yaml").read_text()
    assert "description: baseline, lr sweep 1 of 4" in record
    checkpoint = load_checkpoint(result.run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["spec"]["description"] == "baseline, lr sweep 1 of 4"


def test_a_checkpoint_without_a_monitor_is_the_best_model_path_as_in_lightning(tmp_path):
    import json

    result = run(tmp_path, "callbacks=[ModelCheckpoint]")
    results = json.loads((result.run_dir / "results.json").read_text())
    assert results["best_model_path"] and results["best_model_path"].endswith("epoch=1-step=6.ckpt")


def test_a_scheduler_monitor_beside_a_scheduler_that_reads_none_is_an_error(tmp_path):
    with pytest.raises(SpecError, match="monitor is read only by ReduceLROnPlateau; StepLR steps without a metric"):
        make_spec(tmp_path, "scheduler={StepLR: {step_size: 1}, monitor: val/loss}")
    with pytest.raises(SpecError, match="has no argument 'scale_fn'"):
        make_spec(tmp_path, "scheduler={CyclicLR: {base_lr: 0.01, max_lr: 0.1, scale_fn: x}}")


def test_sixteen_mixed_on_the_cpu_says_it_is_slow(tmp_path):
    from trainer_specs import quiet

    console = quiet()
    run(tmp_path, "trainer.precision=16", "trainer.max_epochs=1", console=console)
    assert "note: 16-mixed on the CPU runs 4-8x slower than 32-true" in console.file.getvalue()


def test_min_epochs_keeps_training_past_an_early_stop(tmp_path):
    # patience 0 on a metric that cannot improve after the first check: EarlyStopping asks to stop at once.
    stop_at_once = "callbacks=[{EarlyStopping: {monitor: val/loss, mode: max, patience: 0}}]"
    assert run(tmp_path, stop_at_once, "trainer.max_epochs=6").epochs < 6
    result = run(tmp_path, stop_at_once, "trainer.max_epochs=6", "trainer.min_epochs=4")
    assert 4 <= result.epochs < 6
    result = run(tmp_path, stop_at_once, "trainer.max_epochs=6", "trainer.min_steps=13")
    assert result.global_step >= 13  # 3 steps an epoch: at least 5 epochs


def test_max_time_stops_the_run_and_takes_both_spellings(tmp_path):
    spec = make_spec(tmp_path, "trainer.max_time={minutes: 1, seconds: 30}")
    assert spec.trainer.max_time_seconds == 90
    assert make_spec(tmp_path, "trainer.max_time='01:02:03:04'").trainer.max_time_seconds == 93784
    with pytest.raises(SpecError, match="max_time"):
        make_spec(tmp_path, "trainer.max_time='1 hour'")
    result = run(tmp_path, "trainer.max_time='00:00:00:00'", "trainer.max_epochs=50")
    assert result.global_step <= 1  # time is up after the first step


def test_max_time_counts_the_training_before_a_resume(tmp_path):
    first = run(tmp_path, "trainer.max_epochs=2")
    last = first.run_dir / "checkpoints" / "last.ckpt"
    spent = load_checkpoint(last)["loop"]["time_elapsed"]
    assert spent > 0
    # Given exactly the time the first run took, the resumed run has none left: it trains no further epoch.
    spec = make_spec(tmp_path, "trainer.max_epochs=50", f"trainer.max_time={{seconds: {spent}}}")
    resumed = run_module.fit_spec(spec, console=quiet(), resume_from=last)
    assert (resumed.epochs, resumed.global_step) == (2, first.global_step)


def test_fast_dev_run_runs_one_batch_of_each_stage_and_writes_nothing(tmp_path):
    result = run(tmp_path, "trainer.fast_dev_run=true", "callbacks=[{ModelCheckpoint: {monitor: val/loss}}]")
    assert (result.global_step, result.epochs, result.run_dir) == (1, 1, None)
    assert not (tmp_path / "runs").exists()
    assert run(tmp_path, "trainer.fast_dev_run=2").global_step == 2


def test_the_model_summary_is_printed_when_fit_starts_unless_disabled(tmp_path):
    from trainer_specs import quiet

    console = quiet()
    run(tmp_path, console=console)
    assert "Total params: 131" in console.file.getvalue()
    console = quiet()
    run(tmp_path, "trainer.enable_model_summary=false", console=console)
    assert "Total params" not in console.file.getvalue()


def _metric_column(result, name: str) -> list[float]:
    import csv

    with open(result.run_dir / "metrics.csv") as file:
        return [float(row[name]) for row in csv.DictReader(file) if row.get(name)]


def test_learning_rate_monitor_logs_momentum_and_weight_decay(tmp_path):
    result = run(tmp_path, "optimizer={SGD: {lr: 0.5, momentum: 0.9, weight_decay: 0.001}}",
                 "callbacks=[{LearningRateMonitor: {logging_interval: epoch, log_momentum: true, "
                 "log_weight_decay: true}}]")
    assert _metric_column(result, "momentum-SGD") == [0.9, 0.9]
    assert _metric_column(result, "weight_decay-SGD") == [0.001, 0.001]
    result = run(tmp_path, "optimizer={AdamW: {lr: 0.01, betas: [0.8, 0.99]}}",
                 "callbacks=[{LearningRateMonitor: {logging_interval: epoch, log_momentum: true}}]")
    assert _metric_column(result, "momentum-AdamW") == [0.8, 0.8]


def test_early_stopping_thresholds_stop_at_once(tmp_path):
    reached = run(tmp_path, "trainer.max_epochs=10",
                  "callbacks=[{EarlyStopping: {monitor: val/loss, stopping_threshold: 100.0, patience: 50}}]")
    assert reached.epochs == 1 and reached.stopped_early  # any loss is below 100
    diverged = run(tmp_path, "trainer.max_epochs=10",
                   "callbacks=[{EarlyStopping: {monitor: val/loss, divergence_threshold: 0.0, patience: 50}}]")
    assert diverged.epochs == 1 and diverged.stopped_early  # any loss is above 0


def test_early_stopping_not_strict_runs_on_without_its_metric(tmp_path):
    with pytest.raises(SpecError, match="EarlyStopping monitor 'val/acc'"):
        run(tmp_path, "callbacks=[{EarlyStopping: {monitor: val/acc}}]")
    result = run(tmp_path, "trainer.max_epochs=3", "callbacks=[{EarlyStopping: {monitor: val/acc, strict: false}}]")
    assert result.epochs == 3 and not result.stopped_early


def test_early_stopping_can_check_at_the_end_of_the_training_epoch(tmp_path):
    result = run(tmp_path, "trainer.max_epochs=10", "callbacks=[{EarlyStopping: {monitor: train/loss, mode: max, "
                 "patience: 0, check_on_train_epoch_end: true, verbose: true}}]")
    assert result.epochs == 2  # the loss falls: no improvement in "max" after the first epoch
