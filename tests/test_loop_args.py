"""Lightning's loop arguments: val_check_interval, check_val_every_n_epoch: null, overfit_batches,
limit_predict_batches and profiler, as a user sees them (metrics.csv rows, checkpoints, files, errors)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import declarative.run as run_module
from declarative.assembly.trained import load_trained
from declarative.callbacks import Callback
from declarative.errors import SpecError
from declarative.inference.inputs import read_inputs
from declarative.inference.predict import predict
from declarative.training.checkpoint import load_checkpoint
from trainer_specs import checkpoint_names, make_spec, quiet, results, run

SMALL_BATCHES = "data.batch_size=4"  # 12 training batches an epoch, 6 validation batches, 6 test batches


def rows(result) -> list[dict[str, str]]:
    with open(result.run_dir / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def val_steps(result) -> list[int]:
    return [int(row["step"]) for row in rows(result) if row["val/loss"]]


@pytest.mark.parametrize("overrides", [
    ["trainer.val_check_interval=0.25"],
    ["trainer.val_check_interval=1000", "trainer.check_val_every_n_epoch=null"],
    ["trainer.overfit_batches=0.01"], ["trainer.overfit_batches=10"],
    ["trainer.profiler=simple"], ["trainer.profiler=advanced"], ["trainer.profiler=pytorch"],
    ["trainer.limit_predict_batches=1.0"], ["trainer.limit_predict_batches=3"],
])
def test_lightning_docs_spellings_validate(tmp_path, overrides):
    make_spec(tmp_path, *overrides)


def test_a_fraction_validates_four_times_an_epoch_and_each_validation_is_logged_and_checkpointed(tmp_path):
    result = run(tmp_path, SMALL_BATCHES, "trainer.val_check_interval=0.25", "trainer.max_epochs=1",
                 "callbacks=[{ModelCheckpoint: {monitor: val/loss, save_top_k: -1, filename: '{step}'}}]")
    assert val_steps(result) == [3, 6, 9, 12]  # after every 3 of the 12 training batches
    assert checkpoint_names(result) == [f"step={s}.ckpt" for s in (12, 3, 6, 9)]
    mid_epoch = load_checkpoint(result.run_dir / "checkpoints" / "step=6.ckpt")
    assert mid_epoch["epoch"] == 0 and mid_epoch["loop"]["batch"] == 6  # resumes after the 6th batch
    assert mid_epoch["metrics"]["val/loss"] == pytest.approx(float(rows(result)[1]["val/loss"]))


def test_early_stopping_on_a_mid_epoch_validation_stops_there(tmp_path):
    result = run(tmp_path, SMALL_BATCHES, "trainer.val_check_interval=3",
                 "callbacks=[{EarlyStopping: {monitor: val/accuracy, mode: max, stopping_threshold: 0.7}}]")
    steps = val_steps(result)
    assert result.global_step == steps[-1] < 12  # stopped in the first epoch, right after that validation
    assert results(result)["stopped_early"] is True
    assert [int(row["step"]) for row in rows(result) if row["train/loss"]] == [steps[-1]]  # the cut epoch's metrics


def test_an_integer_interval_counts_batches_across_epochs_without_check_val_every_n_epoch(tmp_path):
    result = run(tmp_path, "data.batch_size=8", "trainer.val_check_interval=5", "trainer.check_val_every_n_epoch=null")
    assert val_steps(result) == [5, 10]  # of 2 epochs of 6 batches; not at the epochs' ends (6, 12), as in Lightning


def test_an_interval_longer_than_the_epoch_is_a_located_error_unless_counted_across_epochs(tmp_path):
    with pytest.raises(SpecError, match="val_check_interval=20 is more than the 12 training batches of an epoch"):
        run(tmp_path, SMALL_BATCHES, "trainer.val_check_interval=20")
    assert not any((tmp_path / "runs" / "tiny").glob("version_*"))  # a rejected spec leaves no run folder
    with pytest.raises(SpecError, match=r"spec.yaml:\d+:\d+: val_check_interval must be an integer >= 1 or "
                                        r"a number > 0 and <= 1, got 1.5"):
        make_spec(tmp_path, text=(tmp_path / "spec.yaml").read_text() + "  val_check_interval: 1.5\n")


def test_a_run_resumed_from_a_mid_epoch_validation_checkpoint_ends_as_the_straight_run(tmp_path):
    overrides = [SMALL_BATCHES, "trainer.val_check_interval=0.5", "trainer.log_every_n_steps=1", "trainer.max_epochs=1",
                 "callbacks=[{"
                 "ModelCheckpoint: {monitor: val/loss, save_top_k: -1, filename: '{step}', save_last: true}}]"]
    straight = run(tmp_path, *overrides)
    weights = load_checkpoint(straight.run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    logged = (straight.run_dir / "metrics.csv").read_text()
    resumed = run_module.fit_spec(make_spec(tmp_path, *overrides), console=quiet(),
                                  resume_from=straight.run_dir / "checkpoints" / "step=6.ckpt")
    assert resumed.run_dir == straight.run_dir
    again = load_checkpoint(straight.run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    assert (straight.run_dir / "metrics.csv").read_text() == logged


class Batches(Callback):
    """The targets of every batch each stage ran."""

    def __init__(self):
        self.seen: dict[str, list[list[int]]] = {}

    def _record(self, stage, batch):
        self.seen.setdefault(stage, []).append(batch[1].tolist())

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
        self._record(f"train{trainer.current_epoch}", batch)

    def on_validation_batch_end(self, trainer, model, outputs, batch, batch_idx):
        if not trainer.sanity_checking:
            self._record(f"val{trainer.current_epoch}", batch)

    def on_test_batch_end(self, trainer, model, outputs, batch, batch_idx):
        self._record("test", batch)


def test_overfit_batches_trains_on_the_same_first_batches_and_validates_on_as_many(tmp_path, monkeypatch):
    seen = Batches()
    build = run_module.build_callbacks
    monkeypatch.setattr(run_module, "build_callbacks", lambda spec: build(spec) + [seen])
    console = quiet()
    result = run(tmp_path, SMALL_BATCHES, "trainer.overfit_batches=2", console=console)
    assert result.global_step == 4  # 2 batches, 2 epochs
    assert seen.seen["train0"] == seen.seen["train1"]  # the same batches each epoch: no shuffling
    assert len(seen.seen["val0"]) == len(seen.seen["val1"]) == 2
    assert len(seen.seen["test"]) == 6  # the test run is unchanged
    assert "overfit_batches: training on the same 2 unshuffled batches each epoch" in console.file.getvalue()
    first = run(tmp_path, SMALL_BATCHES, "trainer.overfit_batches=0.25", "trainer.max_epochs=1")
    assert first.global_step == 3  # a quarter of the 12 batches


def test_limit_predict_batches_predicts_that_many_batches(tmp_path):
    result = run(tmp_path, "trainer.max_epochs=1", "logger=false")
    np.save(tmp_path / "new.npy", np.random.default_rng(0).normal(size=(24, 4)).astype(np.float32))
    checkpoint = result.run_dir / "checkpoints" / "last.ckpt"
    for limit, count in (("2", 8), ("0.5", 12), ("1.0", 24)):
        trained = load_trained(checkpoint, [f"trainer.limit_predict_batches={limit}"])
        predictions = predict(trained, read_inputs(trained, [str(tmp_path / "new.npy")]), device=torch.device("cpu"),
                              batch_size=4)
        assert len(predictions.ids) == len(predictions.predictions) == count
    trained = load_trained(checkpoint, ["trainer.limit_predict_batches=1.5"])
    with pytest.raises(SpecError, match="limit_predict_batches=1.5 is a fraction above 1.0"):
        predict(trained, read_inputs(trained, [str(tmp_path / "new.npy")]), device=torch.device("cpu"), batch_size=4)


def test_the_simple_profiler_prints_and_writes_a_table_of_each_action(tmp_path):
    console = quiet()
    result = run(tmp_path, "trainer.profiler=simple", "trainer.log_every_n_steps=1", console=console)
    report = (result.run_dir / "fit-profile.txt").read_text()
    assert report.startswith("FIT Profiler Report")
    assert "Mean duration (s)" in report and "Num calls" in report
    table = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in report.splitlines()
             if line.startswith("|")}
    assert table["training_step"] == table["backward"] == table["optimizer_step"] == "6"  # 3 steps, 2 epochs
    assert table["[Callback]ModelCheckpoint.on_validation_end"] == "3"  # the sanity check's and 2 epochs'
    assert "FIT Profiler Report" in console.file.getvalue()
    assert "test_step" in (result.run_dir / "test-profile.txt").read_text()


def test_the_advanced_profiler_writes_cprofile_statistics_per_action(tmp_path):
    result = run(tmp_path, "trainer.profiler=advanced", "trainer.max_epochs=1")
    report = (result.run_dir / "fit-profile.txt").read_text()
    assert "Profile stats for: training_step" in report and "Profile stats for: backward" in report
    assert "Ordered by: cumulative time" in report


def test_the_pytorch_profiler_writes_a_tensorboard_trace_and_the_operator_table(tmp_path):
    result = run(tmp_path, "trainer.profiler=pytorch", "trainer.max_epochs=3")  # 9 steps: the schedule records 3
    traces = list((result.run_dir / "plugins" / "profile").glob("*.pt.trace.json"))
    assert len(traces) == 1
    events = json.loads(traces[0].read_text())["traceEvents"]
    names = {event.get("name") for event in events}
    assert {"training_step", "backward", "optimizer_step"} <= names
    assert sum(name.startswith("ProfilerStep#") for name in names if name) == 3
    assert "aten::" in (result.run_dir / "fit-profile.txt").read_text()


def test_no_profiler_writes_no_profile(tmp_path):
    result = run(tmp_path, "trainer.max_epochs=1")
    assert not list(result.run_dir.glob("*profile*")) and not (result.run_dir / "plugins").exists()
