"""ModelCheckpoint, EarlyStopping and LearningRateMonitor, with Lightning's meaning, seen through real runs."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from declarative.callbacks import CALLBACKS, EarlyStopping, ModelCheckpoint
from declarative.errors import SpecError
from declarative.run import test_checkpoint as checkpoint_test_metrics
from trainer_specs import checkpoint_names, quiet, results, run


def csv_rows(result) -> list[dict]:
    with open(result.run_dir / "metrics.csv") as file:
        return list(csv.DictReader(file))


def val_losses(result) -> list[float]:
    return [float(row["val/loss"]) for row in csv_rows(result) if row["val/loss"]]


def test_callbacks_are_registered_with_their_lightning_arguments():
    assert CALLBACKS.names() == ["BackboneFinetuning", "BatchSizeFinder", "DeviceStatsMonitor", "EarlyStopping",
                                 "EMAWeightAveraging", "GradientAccumulationScheduler", "LearningRateFinder",
                                 "LearningRateMonitor", "ModelCheckpoint", "ModelPruning", "ModelSummary",
                                 "OnExceptionCheckpoint", "RichModelSummary", "RichProgressBar", "SpikeDetection",
                                 "StochasticWeightAveraging", "ThroughputMonitor", "Timer", "TQDMProgressBar",
                                 "WeightAveraging"]
    # Lightning 2.6's signature, in its order
    assert list(CALLBACKS["ModelCheckpoint"].params) == [
        "dirpath", "filename", "monitor", "verbose", "save_last", "save_top_k", "save_on_exception", "save_weights_only",
        "mode", "auto_insert_metric_name", "every_n_train_steps", "train_time_interval", "every_n_epochs",
        "save_on_train_epoch_end", "enable_version_counter"]
    assert CALLBACKS["EarlyStopping"].required == ["monitor"]


def test_top_k_keeps_exactly_k_checkpoints_named_by_the_template(tmp_path):
    result = run(tmp_path, "trainer.max_epochs=5", "callbacks=[{ModelCheckpoint: "
                 "{monitor: val/loss, save_top_k: 2, filename: '{epoch}-{val/loss:.4f}'}}]")
    names = checkpoint_names(result)
    losses = val_losses(result)
    best_two = sorted(range(5), key=lambda epoch: losses[epoch])[:2]
    assert names == sorted(f"epoch={e}-val_loss={losses[e]:.4f}.ckpt" for e in best_two)
    best = min(range(5), key=lambda epoch: losses[epoch])
    assert results(result)["best_model_path"].endswith(f"epoch={best}-val_loss={losses[best]:.4f}.ckpt")
    assert results(result)["best_model_score"] == pytest.approx(losses[best])


def test_mode_max_keeps_the_highest(tmp_path):
    result = run(tmp_path, "trainer.max_epochs=3",
                 "callbacks=[{ModelCheckpoint: {monitor: val/loss, mode: max, save_last: true}}]")
    losses = val_losses(result)
    worst = max(range(3), key=lambda epoch: losses[epoch])
    assert checkpoint_names(result) == sorted([f"epoch={worst}-step={3 * (worst + 1)}.ckpt", "last.ckpt"])


def test_without_a_monitor_the_latest_checkpoint_is_kept(tmp_path):
    result = run(tmp_path, "trainer.max_epochs=3", "callbacks=[ModelCheckpoint]")
    assert checkpoint_names(result) == ["epoch=2-step=9.ckpt"]
    everything = run(tmp_path, "trainer.max_epochs=3", "callbacks=[{ModelCheckpoint: {save_top_k: -1}}]")
    assert checkpoint_names(everything) == ["epoch=0-step=3.ckpt", "epoch=1-step=6.ckpt", "epoch=2-step=9.ckpt"]


def test_every_n_epochs_skips_the_epochs_between(tmp_path):
    result = run(tmp_path, "trainer.max_epochs=4", "callbacks=[{ModelCheckpoint: {save_top_k: -1, every_n_epochs: 2}}]")
    assert checkpoint_names(result) == ["epoch=1-step=6.ckpt", "epoch=3-step=12.ckpt"]


def test_default_checkpointing_keeps_last_ckpt_and_can_be_turned_off(tmp_path):
    assert checkpoint_names(run(tmp_path)) == ["last.ckpt"]
    assert checkpoint_names(run(tmp_path, "trainer.enable_checkpointing=false")) == []
    with pytest.raises(SpecError, match="enable_checkpointing is false, but callbacks lists a ModelCheckpoint"):
        run(tmp_path, "trainer.enable_checkpointing=false", "callbacks=[ModelCheckpoint]")


def test_save_top_k_above_one_without_a_monitor_is_a_located_error(tmp_path):
    with pytest.raises(SpecError, match="save_top_k=3 needs a monitor"):
        run(tmp_path, "callbacks=[{ModelCheckpoint: {save_top_k: 3}}]")


def test_a_filename_field_that_is_never_logged_is_a_located_error(tmp_path):
    with pytest.raises(SpecError, match="filename field 'val/acc' is not a metric this run logs — did you mean "
                                        "'val/accuracy'"):
        run(tmp_path, "callbacks=[{ModelCheckpoint: {filename: '{epoch}-{val/acc:.2f}'}}]")


def test_test_runs_on_the_best_checkpoint_when_a_monitor_ranks_them(tmp_path):
    # mode max on val/loss: the "best" is the worst epoch, so its weights differ from the final ones.
    result = run(tmp_path, "trainer.max_epochs=4", "callbacks=[{ModelCheckpoint: {monitor: val/loss, mode: max, "
                                                    "save_last: true}}]")
    best = checkpoint_test_metrics(result.best_model_path, console=quiet())
    last = checkpoint_test_metrics(result.last_model_path, console=quiet())
    assert result.test_metrics == best
    assert best != last


def test_early_stopping_stops_when_the_monitored_value_stops_improving(tmp_path):
    # lr 0: the weights never change, so val/loss is the same every epoch: it improves once (from inf),
    # then waits `patience` epochs.
    console = quiet()
    result = run(tmp_path, "trainer.max_epochs=20", "optimizer={SGD: {lr: 0.0}}",
                 "callbacks=[{EarlyStopping: {monitor: val/loss, patience: 2}}]", console=console)
    assert result.epochs == 3 and result.stopped_early
    assert results(result)["stopped_early"] is True
    assert "did not improve in the last 2 records" in console.file.getvalue()


class FakeTrainer:
    """Just what EarlyStopping reads and writes."""

    def __init__(self):
        self.callback_metrics, self.current_epoch, self.should_stop = {}, 0, False
        self.sanity_checking, self.has_validation = False, True
        self.printed = []

    def print(self, message):
        self.printed.append(message)


@pytest.mark.parametrize("mode, values, stop_at", [
    ("min", [1.0, 0.9, 0.95, 0.91, 0.92], 3),  # best 0.9 at epoch 1, then two without improvement
    ("min", [1.0, 0.99, 0.985, 0.984], 2),  # min_delta 0.02: these small steps are no improvement
    ("max", [0.1, 0.5, 0.4, 0.6, 0.5, 0.55], 5),
    ("min", [1.0, math.nan], 1),  # not finite: stop at once
])
def test_early_stopping_counts_checks_without_improvement(mode, values, stop_at):
    callback = EarlyStopping(monitor="val/loss", mode=mode, patience=2, min_delta=0.02 if stop_at == 2 else 0.0)
    trainer = FakeTrainer()
    for epoch, value in enumerate(values):
        trainer.current_epoch = epoch
        trainer.callback_metrics["val/loss"] = value
        callback.on_validation_end(trainer, None)
        if trainer.should_stop:
            break
    assert trainer.should_stop and callback.stopped_epoch == stop_at


def test_early_stopping_skips_the_sanity_check():
    callback, trainer = EarlyStopping(monitor="val/loss", patience=0), FakeTrainer()
    trainer.sanity_checking, trainer.callback_metrics["val/loss"] = True, math.nan
    callback.on_validation_end(trainer, None)
    assert not trainer.should_stop


def test_a_monitor_without_validation_is_a_located_error_before_training(tmp_path):
    with pytest.raises(SpecError, match="EarlyStopping monitor 'val/loss' needs validation"):
        run(tmp_path, "trainer.limit_val_batches=0", "callbacks=[{EarlyStopping: {monitor: val/loss}}]")


def test_learning_rate_monitor_logs_each_logged_step(tmp_path):
    result = run(tmp_path, "trainer.log_every_n_steps=1", "callbacks=[LearningRateMonitor]",
                 "scheduler={OneCycleLR: {max_lr: 1.0}, interval: step}")
    rates = [(int(row["step"]), float(row["lr-SGD"])) for row in csv_rows(result) if row["lr-SGD"]]
    assert [step for step, _ in rates] == [1, 2, 3, 4, 5, 6]
    # the rate each step used, as torch's own OneCycleLR gives it for the run's 6 steps
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=6)
    expected = []
    for _ in range(6):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert [rate for _, rate in rates] == pytest.approx(expected)


def test_learning_rate_monitor_without_a_logger_is_a_located_error(tmp_path):
    with pytest.raises(SpecError, match="LearningRateMonitor needs a logger"):
        run(tmp_path, "logger=false", "callbacks=[LearningRateMonitor]")


def test_checkpoint_keeps_the_callbacks_state(tmp_path):
    from declarative.training.checkpoint import load_checkpoint

    result = run(tmp_path, "callbacks=[{ModelCheckpoint: {monitor: val/accuracy, mode: max}}, "
                           "{EarlyStopping: {monitor: val/loss}}]")
    state = load_checkpoint(result.best_model_path)["callbacks"]
    checkpoint_state = state["ModelCheckpoint{'monitor': 'val/accuracy', 'mode': 'max', 'every_n_train_steps': 0, "
                             "'every_n_epochs': 1, 'train_time_interval': None}"]
    assert checkpoint_state["best_model_path"] == result.best_model_path
    assert state["EarlyStopping{'monitor': 'val/loss', 'mode': 'min'}"]["patience"] == 3
    restored = ModelCheckpoint(monitor="val/accuracy", mode="max")
    restored.load_state_dict(checkpoint_state)
    assert restored.best_model_path == result.best_model_path



def test_model_checkpoint_saves_every_n_train_steps_in_the_middle_of_epochs(tmp_path):
    """3 steps an epoch, 2 epochs: steps 2, 4 and 6, each file resumable where it was saved."""
    from declarative.training.checkpoint import load_checkpoint

    result = run(tmp_path, "callbacks=[{ModelCheckpoint: {every_n_train_steps: 2, save_top_k: -1}}]")
    assert checkpoint_names(result) == ["epoch=0-step=2.ckpt", "epoch=1-step=4.ckpt", "epoch=1-step=6.ckpt"]
    loop = load_checkpoint(result.run_dir / "checkpoints" / "epoch=1-step=4.ckpt")["loop"]
    assert (loop["epoch"], loop["batch"], loop["global_step"]) == (1, 1, 4)  # after the 2nd epoch's 1st batch


def test_model_checkpoint_saves_on_train_epoch_end_when_asked(tmp_path):
    result = run(tmp_path, "callbacks=[{ModelCheckpoint: {save_on_train_epoch_end: true, save_top_k: -1}}]")
    assert checkpoint_names(result) == ["epoch=0-step=3.ckpt", "epoch=1-step=6.ckpt"]


def test_model_checkpoint_time_interval_and_step_interval_exclude_each_other(tmp_path):
    with pytest.raises(SpecError, match="every_n_train_steps and train_time_interval exclude each other"):
        run(tmp_path, "callbacks=[{ModelCheckpoint: {every_n_train_steps: 2, train_time_interval: '00:10:00'}}]")
    assert ModelCheckpoint(train_time_interval="01:30:00").train_time_interval == 5400
