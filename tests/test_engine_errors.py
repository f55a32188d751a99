"""Errors during training are located problems: the engine names the input at fault, the assembly the line."""

from __future__ import annotations

import json

import pytest
import torch

from declarative.errors import SpecError
from trainer_specs import checkpoint_names, run


def test_a_layer_that_fails_mid_training_is_named_at_its_line_and_the_run_is_kept(tmp_path, monkeypatch):
    calls = {"train": 0}
    original = torch.nn.ReLU.forward

    def fails_on_the_fifth_training_batch(self, x):  # a fault only real data, mid-run, would show
        if self.training:
            calls["train"] += 1
            if calls["train"] == 5:
                raise RuntimeError("a kernel failed on this batch")
        return original(self, x)

    monkeypatch.setattr(torch.nn.ReLU, "forward", fails_on_the_fifth_training_batch)
    with pytest.raises(SpecError) as caught:
        run(tmp_path, "callbacks=[{ModelCheckpoint: {save_last: true}}]")
    message = str(caught.value)
    # spec.yaml line 12 is `- ReLU`, the second layer; the run was at epoch 1 (0-based), after 4 steps
    assert ":12:7:" in message and "train fails at epoch 1, step 4: a kernel failed on this batch" in message, message
    run_dir = tmp_path / "runs" / "tiny" / "version_0"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "failed" and "a kernel failed" in results["error"]
    assert results["global_step"] == 4
    assert "last.ckpt" in [p.name for p in (run_dir / "checkpoints").iterdir()]  # the epoch before is kept


def test_a_loss_that_turns_non_finite_stops_the_run_naming_epoch_step_and_learning_rate(tmp_path):
    with pytest.raises(SpecError) as caught:
        run(tmp_path, "optimizer={SGD: {lr: 1.0e+30}}", "trainer.log_every_n_steps=1", "trainer.max_epochs=5")
    message = str(caught.value)
    assert "override 'optimizer=" in message
    assert "the training loss became" in message and "at epoch 0, step" in message
    assert "learning rate" in message and "optimizer.SGD.lr is 1e+30" in message
    results = json.loads((tmp_path / "runs" / "tiny" / "version_0" / "results.json").read_text())
    assert results["status"] == "failed" and results["epochs"] == 0


def test_a_successful_run_says_so_in_its_results(tmp_path):
    result = run(tmp_path)
    results = json.loads((result.run_dir / "results.json").read_text())
    assert results["status"] == "success" and "error" not in results and results["world_size"] == 1
    assert checkpoint_names(result) == ["last.ckpt"]


def test_a_run_may_choose_to_train_on_through_a_non_finite_loss(tmp_path):
    result = run(tmp_path, "optimizer={SGD: {lr: 1.0e+30}}", "trainer.log_every_n_steps=1",
                 "trainer.check_finite_loss=false")
    assert result.global_step == 6  # both epochs ran, as Lightning would
    assert json.loads((result.run_dir / "results.json").read_text())["status"] == "success"
