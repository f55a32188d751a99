"""GradientAccumulationScheduler, Timer, ThroughputMonitor, DeviceStatsMonitor, SpikeDetection and ModelPruning,
with Lightning's meaning, seen through real runs of a tiny spec (in process)."""

from __future__ import annotations

import csv
import json
import math

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

SCHEDULE = "callbacks=[{GradientAccumulationScheduler: {scheduling: {0: 3, 2: 2, 3: 1}}}]"


def test_accumulation_follows_the_schedule_epoch_by_epoch(tmp_path):
    # 6 batches an epoch: 3 per step in epochs 0-1 (2 steps), 2 in epoch 2 (3 steps), then 1 (6 steps)
    result = run(tmp_path, "data.batch_size=8", "trainer.max_epochs=4", "trainer.log_every_n_steps=1", SCHEDULE)
    assert steps_per_epoch(result) == [2, 2, 3, 6]
    assert result.global_step == 13


def test_accumulation_schedule_resumes_exactly_in_the_middle_of_an_epoch(tmp_path):
    # step 5: the first step of epoch 2, whose factor (2) the resumed run takes from the epoch
    resumed_equals_straight(tmp_path, "epoch=2-step=5.ckpt", "data.batch_size=8", "trainer.max_epochs=3", SCHEDULE)


def test_accumulation_schedule_beside_accumulate_grad_batches_is_a_located_error(tmp_path):
    with pytest.raises(SpecError, match="trainer.accumulate_grad_batches is 2 and callbacks has a "
                                        "GradientAccumulationScheduler — remove one"):
        run(tmp_path, "trainer.accumulate_grad_batches=2", SCHEDULE)
    with pytest.raises(SpecError, match="scheduling 'a' is not an epoch"):
        run(tmp_path, "callbacks=[{GradientAccumulationScheduler: {scheduling: {a: 1}}}]")


# --- Timer -----------------------------------------------------------------------------------------------

def test_timer_stops_training_at_the_step_or_the_epoch_its_time_is_up(tmp_path):
    console = quiet()
    by_step = run(tmp_path, "trainer.max_epochs=5", "callbacks=[{Timer: {duration: {microseconds: 1}}}]",
                  console=console)
    assert (by_step.global_step, by_step.epochs) == (1, 1)  # 3 steps an epoch: it stopped after the first
    assert "Time limit reached" in console.file.getvalue() and "Timer: training took" in console.file.getvalue()
    elapsed = results(by_step)["time_elapsed"]
    assert set(elapsed) == {"train", "sanity_check", "validate", "test"} and all(v > 0 for v in elapsed.values())
    by_epoch = run(tmp_path, "trainer.max_epochs=5", "callbacks=[{Timer: {duration: {microseconds: 1}, "
                                                     "interval: epoch}}]")
    assert (by_epoch.global_step, by_epoch.epochs) == (3, 1)


def test_timer_keeps_counting_the_training_time_of_the_run_it_resumes(tmp_path):
    first = run(tmp_path, "callbacks=[Timer, {ModelCheckpoint: {save_top_k: -1}}]")
    checkpoint = first.run_dir / "checkpoints" / "epoch=0-step=3.ckpt"
    spent = load_checkpoint(checkpoint)["callbacks"]["Timer"]["time_elapsed"]["train"]
    assert spent > 0
    # a limit the first run's time already used up: the resumed run stops before its first step
    limit = f"{{milliseconds: {spent * 1000 / 2}}}"
    resumed = fit_spec(make_spec(tmp_path, f"callbacks=[{{Timer: {{duration: {limit}}}}}, "
                                           "{ModelCheckpoint: {save_top_k: -1}}]"),
                       console=quiet(), resume_from=checkpoint)
    assert resumed.global_step == 3
    assert results(resumed)["time_elapsed"]["train"] >= spent


def test_timer_duration_in_a_wrong_form_is_a_located_error(tmp_path):
    with pytest.raises(SpecError, match="duration '1:2:3' is not a duration: write \"DD:HH:MM:SS\""):
        run(tmp_path, "callbacks=[{Timer: {duration: '1:2:3'}}]")


# --- SpikeDetection --------------------------------------------------------------------------------------

class OneProcess:
    def reduce_any(self, flag: bool) -> bool:
        return flag


class SpikeTrainer:
    """Just what SpikeDetection reads."""

    def __init__(self, root_dir, callback):
        self.root_dir, self.callbacks, self.strategy = root_dir, [callback], OneProcess()
        self.current_epoch, self.is_global_zero = 0, True


def first_spike(tmp_path, losses: list[float], **arguments) -> int | None:
    from declarative.callbacks import SpikeDetection, TrainingSpikeError

    callback = SpikeDetection(**arguments)
    trainer = SpikeTrainer(tmp_path, callback)
    callback.setup(trainer, None, "fit")
    for batch_idx, loss in enumerate(losses):
        try:
            callback.on_train_batch_end(trainer, None, torch.tensor(loss), None, batch_idx)
        except TrainingSpikeError as exc:
            assert exc.where == ("callbacks", 0)
            assert json.loads((tmp_path / "skip_batches.json").read_text()) == [batch_idx - 1, batch_idx]
            return batch_idx
    return None


@pytest.mark.parametrize("losses, arguments, spike", [
    # running mean of 1.0, 0.9, 0.95, 0.8 is 0.9125: 2.9 is 1.9875 above it, beyond rtol 2 × 0.9125
    ([1.0, 0.9, 0.95, 0.8, 2.9], {}, 4),
    ([1.0, 0.9, 0.95, 0.8, 2.7], {}, None),  # 1.7875 above: within rtol
    ([1.0, 0.9, 0.95, 0.8, 2.9], {"atol": 2.5}, None),  # atol must be passed too
    ([5.0, 0.1, 0.05], {}, None),  # far from the mean, but better than the last loss: never a spike
    ([9.0, 1.0], {}, None),  # the first batch of an epoch (warmup 1) is never a spike
    ([1.0, 1.1, -5.0], {"mode": "max"}, 2),  # mode max: a fall is the spike
    ([1.0, 1.1, math.nan], {}, 2),  # finite_only: NaN is a spike
    ([1.0, 1.1, math.nan, 1.2], {"finite_only": False}, None),  # else it is left out
])
def test_spike_detection_follows_lightnings_rule(tmp_path, losses, arguments, spike):
    assert first_spike(tmp_path, losses, **arguments) == spike


def test_a_spike_stops_the_run_with_a_located_error_and_the_batches_on_file(tmp_path):
    with pytest.raises(SpecError, match=r"training loss spike at epoch 0, batch 1: loss .* batches \[0, 1\] are "
                                        r"written to .*skip_batches.json") as raised:
        run(tmp_path, "optimizer={SGD: {lr: 20.0}}", "callbacks=[{SpikeDetection: {exclude_batches_path: spikes}}]")
    run_dir = next((tmp_path / "runs" / "tiny").iterdir())
    assert json.loads((run_dir / "spikes" / "skip_batches.json").read_text()) == [0, 1]
    assert json.loads((run_dir / "results.json").read_text())["status"] == "failed"
    assert "callbacks=[{SpikeDetection" in str(raised.value)  # located at the callback (here: its override)


# --- ModelPruning ----------------------------------------------------------------------------------------

def zeros(state_dict: dict) -> int:
    return sum(int((tensor == 0).sum()) for tensor in state_dict.values())


def test_pruning_leaves_the_asked_sparsity_in_plain_weights_the_model_loads(tmp_path):
    from declarative.run import test_checkpoint

    console = quiet()
    result = run(tmp_path, "trainer.max_epochs=1", "callbacks=[{ModelPruning: {pruning_fn: l1_unstructured, "
                                                   "amount: 0.5, verbose: 1}}]", console=console)
    path = result.run_dir / "checkpoints" / "last.ckpt"
    state = load_checkpoint(path)["state_dict"]  # weights_only=True
    # every weight and bias of the two Linear layers (4·16 + 16 + 16·3 + 3 = 131), half of them pruned globally
    assert sorted(state) == ["layers.0.bias", "layers.0.weight", "layers.2.bias", "layers.2.weight"]
    assert zeros(state) == round(0.5 * 131)
    assert "Applied `L1Unstructured`. Pruned: 0/131 (0.00%) -> 66/131 (50.38%)" in console.file.getvalue()
    assert test_checkpoint(path, console=quiet()) == result.test_metrics  # the spec's own model loads them


def test_pruning_amount_by_epoch_prunes_only_at_those_epochs(tmp_path):
    result = run(tmp_path, "trainer.max_epochs=3", "callbacks=[{ModelCheckpoint: {save_top_k: -1}}, "
                 "{ModelPruning: {pruning_fn: l1_unstructured, amount: {1: 0.5, 2: 0.5}, "
                 "parameter_names: [weight]}}]")
    checkpoints = result.run_dir / "checkpoints"
    pruned = [zeros(load_checkpoint(checkpoints / f"epoch={e}-step={3 * (e + 1)}.ckpt")["state_dict"])
              for e in range(3)]
    # 112 weights: none pruned after epoch 0, 56 after epoch 1, then half of the remaining 56 more
    assert pruned == [0, 56, 84]


def test_pruning_resumes_exactly_with_its_masks(tmp_path):
    resumed_equals_straight(tmp_path, "epoch=1-step=4.ckpt", "trainer.max_epochs=3",
                            "callbacks=[{ModelPruning: {pruning_fn: l1_unstructured, amount: 0.3}}]")


# --- ThroughputMonitor -----------------------------------------------------------------------------------

def test_throughput_monitor_logs_samples_batches_and_flops_per_second(tmp_path):
    result = run(tmp_path, "trainer.log_every_n_steps=1", "callbacks=[{ThroughputMonitor: {window_size: 2}}]")
    samples, batches, flops = (logged(result, f"train/{name}_per_sec") for name in ("samples", "batches", "flops"))
    # 6 steps of 16 samples; the rates start once the 2-batch window is full
    assert [step for step, _ in samples] == [2, 3, 4, 5, 6] and all(rate > 0 for _, rate in samples)
    assert all(s == pytest.approx(16 * b) for (_, s), (_, b) in zip(samples, batches))
    assert [value for _, value in logged(result, "train/samples")] == [16.0 * step for step in range(1, 7)]
    # FLOPs of one batch, forward (2·16·4·16 + 2·16·16·3) and backward (both weight gradients and the
    # second layer's input gradient): 3584 + 2048 + 1536 + 1536
    assert all(f == pytest.approx(8704 * b) for (_, f), (_, b) in zip(flops, batches))
    assert not logged(result, "train/device/mfu")  # no known peak on the CPU


# --- DeviceStatsMonitor ----------------------------------------------------------------------------------

PREFIX = "DeviceStatsMonitor.on_train_batch_end/"


def test_device_stats_monitor_logs_cpu_stats_at_each_logging_step(tmp_path):
    result = run(tmp_path, "trainer.log_every_n_steps=2", "callbacks=[DeviceStatsMonitor]")
    rss = logged(result, PREFIX + "process_rss_bytes")
    assert [step for step, _ in rss] == [2, 4, 6]
    assert all(10e6 < value < 100e9 for _, value in rss)  # this process's resident memory, in bytes
    assert all(0 <= value <= 100 for _, value in logged(result, PREFIX + "cpu_vm_percent"))
    assert all(value > 0 for _, value in logged(result, PREFIX + "process_cpu_percent"))  # it trained meanwhile


def test_device_stats_monitor_logs_only_the_keys_asked_for_and_needs_a_logger(tmp_path):
    result = run(tmp_path, "trainer.log_every_n_steps=2",
                 "callbacks=[{DeviceStatsMonitor: {filter_keys: [process_rss_bytes]}}]")
    assert [name for name in csv_rows(result)[0] if name.startswith(PREFIX)] == [PREFIX + "process_rss_bytes"]
    with pytest.raises(SpecError, match="DeviceStatsMonitor needs a logger"):
        run(tmp_path, "logger=false", "callbacks=[DeviceStatsMonitor]")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA memory stats need a CUDA GPU")
def test_device_stats_monitor_logs_cuda_memory(tmp_path):
    result = run(tmp_path, "trainer.accelerator=gpu", "trainer.log_every_n_steps=2", "callbacks=[DeviceStatsMonitor]")
    peaks = logged(result, PREFIX + "allocated_bytes.all.peak")
    assert [step for step, _ in peaks] == [2, 4, 6] and all(value > 0 for _, value in peaks)
    assert not logged(result, PREFIX + "process_rss_bytes")  # cpu_stats: none → only on the CPU


def test_a_spike_before_the_first_optimizer_step_keeps_its_batch_file(tmp_path):
    # 3 batches per step: the spike at batch 1 comes before any step, and the run folder stays for its file
    with pytest.raises(SpecError, match=r"batches \[0, 1\]"):
        run(tmp_path, "trainer.accumulate_grad_batches=3",
            "callbacks=[{SpikeDetection: {rtol: 0.0}}]")  # rtol 0: any rise of the loss is a spike
    run_dir = next((tmp_path / "runs" / "tiny").iterdir())
    assert json.loads((run_dir / "skip_batches.json").read_text()) == [0, 1]


def test_pruning_only_the_parameters_named_by_globs(tmp_path):
    result = run(tmp_path, "trainer.max_epochs=1", "callbacks=[{ModelPruning: {pruning_fn: l1_unstructured, "
                                                   "parameters_to_prune: ['layers.0.*']}}]")
    state = load_checkpoint(result.run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert zeros({k: v for k, v in state.items() if k.startswith("layers.0.")}) == round(0.5 * (64 + 16))
    assert zeros({k: v for k, v in state.items() if k.startswith("layers.2.")}) == 0
    with pytest.raises(SpecError, match="parameters_to_prune 'layer.0.weight' matches no weight or bias parameter "
                                        "of the model — did you mean 'layers.0.weight'"):
        run(tmp_path, "callbacks=[{ModelPruning: {pruning_fn: l1_unstructured, parameters_to_prune: [layer.0.weight]}}]")
