"""Checkpoints and run directories: what is on disk after a run, and what a checkpoint alone can do."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

import declarative
import declarative.training.run_dir as run_dir_module
from declarative.errors import SpecError
from declarative.run import test_checkpoint as checkpoint_test_metrics
from declarative.training.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from declarative.training.run_dir import RunDir
from trainer_specs import BASE, make_spec, quiet, run


def test_a_checkpoint_is_plain_data_that_loads_with_weights_only(tmp_path):
    result = run(tmp_path, "scheduler={StepLR: {step_size: 1}}", "optimizer={Adam: {lr: 0.01}}",
                 "callbacks=[{ModelCheckpoint: {monitor: val/loss, save_last: true}}]")
    contents = torch.load(result.last_model_path, weights_only=True)
    assert set(contents) == {"dtrain_version", "spec", "state_dict", "optimizer_states", "lr_schedulers", "precision",
                             "epoch", "global_step", "metrics", "callbacks", "vocabulary", "loop"}
    assert contents["dtrain_version"] == declarative.__version__
    assert contents["spec"] == make_spec(tmp_path, "scheduler={StepLR: {step_size: 1}}", "optimizer={Adam: {lr: 0.01}}",
                                         "callbacks=[{ModelCheckpoint: {monitor: val/loss, save_last: true}}]"
                                         ).to_dict()
    assert (contents["epoch"], contents["global_step"]) == (1, 6)
    assert contents["metrics"]["val/loss"] == pytest.approx(result.val_metrics["val/loss"])
    assert len(contents["optimizer_states"]) == 1 and len(contents["lr_schedulers"]) == 1
    # Written at the epoch's end, after its scheduler step: it resumes at the start of the next epoch.
    assert contents["lr_schedulers"][0]["last_epoch"] == 2
    assert {k: contents["loop"][k] for k in ("epoch", "batch", "global_step")} == {"epoch": 2, "batch": 0,
                                                                                   "global_step": 6}
    assert set(contents["state_dict"]) == {"layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"}


def test_testing_a_checkpoint_alone_repeats_the_runs_test_metrics(tmp_path):
    result = run(tmp_path)  # no monitor: the run tested its final weights, which last.ckpt holds
    assert checkpoint_test_metrics(result.last_model_path, console=quiet()) == result.test_metrics


def test_testing_a_checkpoint_whose_spec_has_no_test_split_says_so(tmp_path):
    result = run(tmp_path, text=BASE.replace("  test: {fraction: 0.25}\n", ""))
    assert result.test_metrics == {}
    with pytest.raises(SpecError, match="its spec has no test split"):
        checkpoint_test_metrics(result.last_model_path, console=quiet())


def test_an_interrupted_save_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    save_checkpoint({"dtrain_version": "0", "spec": {}, "state_dict": {"w": torch.ones(2)}}, path)

    def interrupted(obj, file):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"dtrain_version": "0", "spec": {}, "state_dict": {"w": torch.zeros(2)}}, path)
    assert os.listdir(tmp_path) == ["last.ckpt"]  # no temp file left behind
    assert torch.equal(load_checkpoint(path)["state_dict"]["w"], torch.ones(2))  # the previous save, whole


def test_atomic_write_makes_an_ordinary_file(tmp_path):
    atomic_write(tmp_path / "a" / "b.txt", lambda file: file.write(b"hello"))
    path = tmp_path / "a" / "b.txt"
    assert path.read_bytes() == b"hello"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


class Exploit:
    ran = False

    def __reduce__(self):
        return (setattr, (Exploit, "ran", True))


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_text("not a checkpoint"), "not a dtrain checkpoint: torch.load cannot read it"),
    (lambda p: p.write_text("hi\n"), "not a dtrain checkpoint: torch.load cannot read it"),  # fails in the unpickler
    (lambda p: torch.save({"state_dict": {}}, p), "not a dtrain checkpoint: it has no 'dtrain_version'"),
    (lambda p: torch.save({"pytorch-lightning_version": "2.4", "state_dict": {}}, p),
     "it is a PyTorch Lightning checkpoint"),
    (lambda p: torch.save([torch.ones(1)], p), "it holds a list"),
    (lambda p: torch.save({"x": Exploit()}, p), "it holds Python objects"),
    (lambda p: p.write_bytes(pickle.dumps(Exploit())), "not a dtrain checkpoint"),
])
def test_a_file_that_is_not_a_dtrain_checkpoint_is_a_clear_error(tmp_path, write, message):
    path = tmp_path / "model.ckpt"
    write(path)
    with pytest.raises(SpecError) as caught:
        load_checkpoint(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert not Exploit.ran  # weights_only never runs pickled code


def test_a_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(SpecError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.ckpt")


def test_a_second_run_gets_the_next_version_beside_the_first(tmp_path):
    first, second = run(tmp_path), run(tmp_path)
    assert first.run_dir == tmp_path / "runs" / "tiny" / "version_0"
    assert second.run_dir == tmp_path / "runs" / "tiny" / "version_1"
    assert (first.run_dir / "results.json").exists() and (second.run_dir / "results.json").exists()


def test_run_dirs_count_past_the_highest_version_and_never_share_one(tmp_path, monkeypatch):
    spec = make_spec(tmp_path)
    parent = tmp_path / "runs" / "tiny"
    (parent / "version_0").mkdir(parents=True)
    (parent / "version_4").mkdir()
    assert RunDir.create(spec.trainer.default_root_dir, spec.name).path == parent / "version_5"
    # another run took the number between our look and our mkdir: take the next one
    monkeypatch.setattr(run_dir_module, "_next_version", lambda folder: 4)
    assert RunDir.create(spec.trainer.default_root_dir, spec.name).path == parent / "version_6"
    assert sorted(p.name for p in parent.iterdir()) == ["version_0", "version_4", "version_5", "version_6"]


def test_a_rejected_spec_leaves_no_run_folder(tmp_path):
    with pytest.raises(SpecError):
        run(tmp_path, "trainer.enable_checkpointing=false", "callbacks=[ModelCheckpoint]")
    assert not (tmp_path / "runs").exists()
    with pytest.raises(SpecError, match="LearningRateMonitor needs a logger"):  # found when fit starts
        run(tmp_path, "logger=false", "callbacks=[LearningRateMonitor]")
    with pytest.raises(SpecError, match="validation fails in the sanity check"):
        run(tmp_path, "loss={CrossEntropyLoss: {weight: [1.0, 2.0]}}")  # 2 class weights for 3 classes
    assert not list((tmp_path / "runs").glob("*/version_*"))

