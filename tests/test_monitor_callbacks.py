"""GradientAccumulationScheduler, Timer, ThroughputMonitor, DeviceStatsMonitor, SpikeDetection and ModelPruning,
with Lightning's meaning, seen through real runs of a tiny spec (in process)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from declarative.errors import SpecError
from declarative.run import fit_spec
from declarative.training.checkpoint import load_checkpoint
from trainer_specs import make_spec, quiet, results, run


def csv_rows(result) -> list[dict]:
    with open(result.run_dir / "metrics.csv") as file:
        return list(csv.DictReader(file))


def logged(result, name: str) -> list[tuple[int, float]]:
    """(step, value) of each row that logged `name`."""
    return [(int(row["step"]), float(row[name])) for row in csv_rows(result) if row.get(name)]


def steps_per_epoch(result) -> list[int]:
    epochs = [int(row["epoch"]) for row in csv_rows(result) if row.get("train/loss_step")]
    return [epochs.count(epoch) for epoch in range(max(epochs) + 1)]


def resumed_equals_straight(tmp_path, checkpoint_name: str, *overrides: str) -> None:
    """A run resumed from one of its own step checkpoints ends with the weights of the run that never stopped."""
    every_step = "{ModelCheckpoint: {every_n_train_steps: 1, save_top_k: -1, save_last: true}}"
    *others, callbacks = overrides
    overrides = (*others, callbacks.replace("callbacks=[", f"callbacks=[{every_step}, "))
    straight = run(tmp_path, *overrides)
    final = load_checkpoint(straight.run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    fit_spec(make_spec(tmp_path, *overrides), console=quiet(),
             resume_from=straight.run_dir / "checkpoints" / checkpoint_name)
    resumed = load_checkpoint(straight.run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(torch.equal(final[key], resumed[key]) for key in final)


# --- GradientAccumulationScheduler ------------------------------------------------------------------------

SCHEDULE = "callbacks=[{GradientAccumulationScheduler: {scheduling: {0: 4, 2: 3, 3: 1}}}]"


def test_accumulation_follows_the_schedule_epoch_by_epoch(tmp_path):
    # 12 batches an epoch: 4 per step in epochs 0-1 (3 steps), 3 in epoch 2 (4 steps), then 1 (12 steps)
    result = run(tmp_path, "data.batch_size=4", "trainer.max_epochs=4", "trainer.log_every_n_steps=1", SCHEDULE)
    assert steps_per_epoch(result) == [3, 3, 4, 12]
    assert result.global_step == 22


def test_accumulation_schedule_resumes_exactly_in_the_middle_of_an_epoch(tmp_path):
    # step 8: the second step of epoch 2, whose factor (3) the resumed run takes from the epoch
    resumed_equals_straight(tmp_path, "epoch=2-step=8.ckpt", "data.batch_size=4", "trainer.max_epochs=3", SCHEDULE)


def test_accumulation_schedule_beside_accumulate_grad_batches_is_a_located_error(tmp_path):
    with pytest.raises(SpecError, match="trainer.accumulate_grad_batches is 2 and callbacks has a "
                                        "GradientAccumulationScheduler — remove one"):
        run(tmp_path, "trainer.accumulate_grad_batches=2", SCHEDULE)
    with pytest.raises(SpecError, match="scheduling 'a' is not an epoch"):
        run(tmp_path, "callbacks=[{GradientAccumulationScheduler: {scheduling: {a: 1}}}]")
