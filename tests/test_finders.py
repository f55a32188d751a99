"""LearningRateFinder and BatchSizeFinder: Lightning's LR range test and batch size search, run before
training on real models and data; what they chose is trained with, printed and recorded."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from rich.console import Console

from declarative.run import fit_spec
from declarative.spec.validate import load_spec
from declarative.training.checkpoint import load_checkpoint

# A linear regression the whole training split of which is one batch: the loss at each rate of the range
# test is measured on the same samples, so the curve is flat until the rate is large enough to learn.
SPEC = """\
name: finders
seed: 0
data:
  source: {{ArrayFile: {{path: {data}}}}}
  val: {{fraction: 0.25}}
  batch_size: 256
model:
  input: [4]
  layers:
    - Linear: {{out_features: 1}}
loss: MSELoss
optimizer: {{SGD: {{lr: 1.0e-8}}}}
trainer: {{max_epochs: 2, enable_progress_bar: false, enable_model_summary: false, accelerator: cpu}}
logger: false
"""


def write(tmp_path: Path, extra: str = "", samples: int = 256) -> Path:
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(samples, 4)).astype(np.float32)
    weights = np.array([1.5, -2.0, 0.5, 3.0], dtype=np.float32)
    targets = (inputs @ weights)[:, None] + 0.1 * rng.normal(size=(samples, 1))
    data = tmp_path / "data.npz"
    np.savez(data, inputs=inputs, targets=targets.astype(np.float32))
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(data=data) + extra)
    return path


def fit(path: Path, *overrides: str):
    """Fit in this process; the result and what it printed."""
    output = io.StringIO()
    spec = load_spec(path, [f"trainer.default_root_dir={path.parent / 'runs'}", *overrides])
    result = fit_spec(spec, console=Console(file=output, width=200))
    return result, output.getvalue()


def results(result) -> dict:
    return json.loads((result.run_dir / "results.json").read_text())


def weights(result) -> dict[str, torch.Tensor]:
    return load_checkpoint(result.last_model_path)["state_dict"]


# -- LearningRateFinder ------------------------------------------------------------------------------------


def test_lr_finder_trains_with_the_rate_it_suggests_as_a_run_given_that_rate_does(tmp_path):
    path = write(tmp_path, "callbacks: [LearningRateFinder]\n")
    tuned, printed = fit(path, "trainer.max_epochs=20")
    record = results(tuned)["tuned"]["lr"]
    lr = record["suggestion"]
    # lr 1e-8 cannot learn this in 2 epochs; the steepest descent of the loss is where SGD starts to learn
    assert 1e-4 < lr < 1 and record["applied"] and record["initial_lr"] == 1e-8 and record["steps"] == 100
    assert f"steepest loss descent at lr {lr:.4g} — training with it (was 1e-08)" in printed
    with open(tuned.run_dir / "lr_find.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 100 and float(rows[0]["lr"]) == 1e-8 and float(rows[-1]["lr"]) == pytest.approx(1.0)
    assert lr in [float(row["lr"]) for row in rows]
    recorded = yaml.safe_load((tuned.run_dir / "spec.yaml").read_text())
    assert recorded["optimizer"] == {"SGD": {"lr": lr}}
    assert load_checkpoint(tuned.last_model_path)["spec"]["optimizer"] == {"SGD": {"lr": lr}}

    # The same spec with that rate written in, no finder: the range test left no trace but the rate.
    direct, _ = fit(path, "trainer.max_epochs=20", f"optimizer.SGD.lr={lr!r}", "callbacks=[]")
    assert all(torch.equal(weights(tuned)[k], weights(direct)[k]) for k in weights(direct))
    assert tuned.val_metrics == direct.val_metrics
    untuned, _ = fit(path, "trainer.max_epochs=20", "callbacks=[]")
    assert tuned.val_metrics["val/loss"] < 0.8 * untuned.val_metrics["val/loss"]
    # ... and the recorded spec alone runs the same training
    again, _ = fit(tuned.run_dir / "spec.yaml")
    assert all(torch.equal(weights(tuned)[k], weights(again)[k]) for k in weights(again))


def test_lr_finder_stops_when_the_loss_diverges_and_reports_without_applying(tmp_path):
    path = write(tmp_path, "callbacks: [{LearningRateFinder: {max_lr: 100.0, update_attr: false}}]\n")
    result, printed = fit(path, "trainer.max_epochs=1")
    record = results(result)["tuned"]["lr"]
    with open(result.run_dir / "lr_find.csv") as file:
        losses = [float(row["loss"]) for row in csv.DictReader(file)]
    # Lightning's rule: stop at the first step whose smoothed loss is over 4x the best one before it
    assert record["steps"] == len(losses) < 100 and not (losses[-1] <= 4 * min(losses[:-1]))
    assert all(not (loss > 4 * min(losses[:i])) for i, loss in enumerate(losses[1:-1], 1))
    assert "stopped early: the loss diverged" in printed and "not applied (update_attr: false)" in printed
    assert record["applied"] is False and yaml.safe_load((result.run_dir / "spec.yaml").read_text())[
        "optimizer"] == {"SGD": {"lr": 1e-8}}


GROUPS = "optimizer:\n  SGD: {lr: 1.0e-8}\n  param_groups:\n    - params: {names: ['*.bias']}\n      lr: 1.0e-9\n"


def test_lr_finder_keeps_param_group_ratios_and_onecycle_peaks_at_the_rate_found(tmp_path):
    path = write(tmp_path, "callbacks: [{LearningRateFinder: {num_training_steps: 40}}]\n"
                           "scheduler: {OneCycleLR: {max_lr: [1.0e-8, 1.0e-9]}, interval: step}\n")
    path.write_text(path.read_text().replace("optimizer: {SGD: {lr: 1.0e-8}}\n", GROUPS))
    result, _ = fit(path, "trainer.max_epochs=1")
    lr = results(result)["tuned"]["lr"]["suggestion"]
    recorded = yaml.safe_load((result.run_dir / "spec.yaml").read_text())
    assert recorded["optimizer"]["SGD"] == {"lr": lr}
    assert recorded["optimizer"]["param_groups"][0]["lr"] == pytest.approx(lr / 10)
    assert recorded["scheduler"]["OneCycleLR"]["max_lr"] == [lr, recorded["optimizer"]["param_groups"][0]["lr"]]
    # the scheduler was built after the finder: torch's OneCycleLR peaks at the rates found
    saved = load_checkpoint(result.last_model_path)["optimizer_states"][0]["param_groups"]
    assert [group["max_lr"] for group in saved] == recorded["scheduler"]["OneCycleLR"]["max_lr"]


# -- BatchSizeFinder ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, chosen, loader", [("power", 64, "memory"), ("binsearch", 60, "memory"),
                                                  ("power", 64, "dataloader")])
def test_batch_size_finder_stops_at_the_training_splits_size_as_lightning_does(tmp_path, mode, chosen, loader):
    # 40 training samples: 2, 4, ..., 32 fit; 64 is tried (one batch of all 40) and no larger size is;
    # binsearch then takes its 5% margin off (Lightning 2.6: int(64 * 0.95) = 60)
    path = write(tmp_path, f"callbacks: [{{BatchSizeFinder: {{mode: {mode}, steps_per_trial: 1}}}}]\n", samples=50)
    result, printed = fit(path, "data.batch_size=16", "data.val.fraction=0.2", "trainer.max_epochs=1",
                          f"data.loader={loader}")
    record = results(result)["tuned"]["batch_size"]
    assert [t["batch_size"] for t in record["trials"]] == [2, 4, 8, 16, 32, 64]
    assert record["batch_size"] == chosen and record["initial"] == 16
    assert f"→ batch_size {chosen} (was 16)" in printed
    assert ("data: DataLoader" in printed) == (loader == "dataloader")
    assert yaml.safe_load((result.run_dir / "spec.yaml").read_text())["data"]["batch_size"] == chosen
    assert result.global_step == 1  # one batch per epoch at the size found


class OutOfMemoryAbove(torch.nn.Module):
    """A real model that, like a GPU, runs out of memory on batches of more than `limit` samples."""

    def __init__(self, inner: torch.nn.Module, limit: int):
        super().__init__()
        self.inner, self.limit = inner, limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {x.shape[0]} samples")
        return self.inner(x)


@pytest.mark.parametrize("mode, chosen, tried", [
    ("power", 16, [(2, True), (4, True), (8, True), (16, True), (32, False)]),
    ("binsearch", 19, [(2, True), (4, True), (8, True), (16, True), (32, False), (24, False), (20, True),
                       (22, False), (21, False)]),
])
def test_batch_size_finder_keeps_the_largest_size_that_fits_and_restores_the_model(tmp_path, mode, chosen, tried):
    from declarative.assembly.build import assemble
    from declarative.assembly.tuning import tune
    from declarative.run import build_callbacks_with_paths

    spec = load_spec(write(tmp_path, f"callbacks: [{{BatchSizeFinder: {{mode: {mode}}}}}]\n"), ["data.batch_size=16"])
    callbacks, paths = build_callbacks_with_paths(spec)
    run = assemble(spec, console=Console(file=io.StringIO()), callbacks=callbacks, callback_paths=paths)
    run = dataclasses.replace(run, model=OutOfMemoryAbove(run.model, 20))
    optimizer = torch.optim.Adam(run.model.parameters(), lr=0.01)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    rng = torch.get_rng_state()

    tuned = tune(run, optimizer)

    finder = callbacks[0]
    assert finder.trials == tried and finder.optimal_batch_size == chosen  # binsearch: int(20 * 0.95)
    assert tuned.spec.data.batch_size == chosen and tuned.data.train.batch_size == chosen
    assert tuned.data.val.batch_size == chosen  # eval_batch_size unset: validation follows batch_size
    assert all(torch.equal(before[k], v) for k, v in run.model.state_dict().items())
    assert optimizer.state_dict()["state"] == {} and torch.equal(torch.get_rng_state(), rng)


def test_finders_skip_a_fast_dev_run_and_a_resume_keeps_what_they_chose(tmp_path):
    from declarative.spec.validate import spec_from_data

    path = write(tmp_path, "callbacks: [{BatchSizeFinder: {steps_per_trial: 1}}, "
                           "{LearningRateFinder: {num_training_steps: 30}}]\n", samples=50)
    path.write_text(path.read_text().replace("optimizer: {SGD: {lr: 1.0e-8}}\n", GROUPS))
    _, printed = fit(path, "trainer.fast_dev_run=true", "data.batch_size=16")
    assert "Skipping BatchSizeFinder since fast_dev_run is enabled." in printed
    assert "Skipping LearningRateFinder since fast_dev_run is enabled." in printed

    first, _ = fit(path, "trainer.max_epochs=1", "data.batch_size=16")
    chosen = results(first)["tuned"]
    assert chosen["batch_size"]["batch_size"] == 64 and chosen["lr"]["applied"]
    # the spec as written (lr 1e-8, batch_size 16) resumes the tuned run: the finders do not run again
    spec = load_spec(path, ["trainer.max_epochs=2", "data.batch_size=16"])
    output = io.StringIO()
    resumed = fit_spec(spec, console=Console(file=output, width=200), resume_from=first.last_model_path)
    assert "Skipping LearningRateFinder since a resumed run keeps what its first run chose." in output.getvalue()
    assert resumed.epochs == 2 and results(resumed)["tuned"] == chosen
    # the checkpoint's own spec (what `dtrain resume RUN_FOLDER` runs) has the values already: kept as they are
    contents = load_checkpoint(resumed.last_model_path)
    embedded = spec_from_data(contents["spec"], origin="checkpoint", overrides=["trainer.max_epochs=3"])
    again = fit_spec(embedded, console=Console(file=io.StringIO()), resume_from=resumed.last_model_path)
    lr = chosen["lr"]["suggestion"]
    tuned = {"SGD": {"lr": lr}, "param_groups": [{"params": {"names": ["*.bias"]}, "lr": 1e-9 * (lr / 1e-8)}]}
    assert again.epochs == 3 and load_checkpoint(again.last_model_path)["spec"]["optimizer"] == tuned
    assert contents["spec"]["optimizer"] == tuned


def test_batch_size_search_starts_at_init_val_and_lowers_a_size_above_the_split_that_does_not_fit():
    from declarative.callbacks.batch_size_finder import BatchSizeFinder, search_batch_size

    # Lightning's rule "no change once the size is the split's" would keep a spec's 500 and retry it
    finder = BatchSizeFinder()
    assert search_batch_size(finder, 500, 192, lambda size: size <= 100) == 64
    assert finder.trials == [(2, True), (4, True), (8, True), (16, True), (32, True), (64, True), (128, False)]
    finder = BatchSizeFinder(mode="binsearch", margin=0.0, max_val=48)
    assert search_batch_size(finder, 8, 1000, lambda size: True) == 48  # max_val: not tried, as Lightning's
    assert [size for size, _ in finder.trials] == [2, 4, 8, 16, 32]
