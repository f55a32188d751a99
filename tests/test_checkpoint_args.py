"""ModelCheckpoint's remaining Lightning arguments, seen through real runs: save_weights_only, save_last: link,
verbose, auto_insert_metric_name, enable_version_counter, save_on_exception."""

from __future__ import annotations

import io
import os

import pytest
import torch
from rich.console import Console

import declarative.run as run_module
from declarative.assembly.trained import load_trained
from declarative.callbacks import Callback
from declarative.errors import SpecError
from declarative.inference.export import export_trained
from declarative.inference.inputs import Inputs
from declarative.inference.predict import predict
from declarative.run import fit_spec
from declarative.run import test_checkpoint as checkpoint_test_metrics
from declarative.training.checkpoint import load_checkpoint
from trainer_specs import checkpoint_names, make_spec, quiet, results, run


def test_a_weights_only_checkpoint_tests_predicts_and_exports_but_does_not_resume(tmp_path):
    result = run(tmp_path, "callbacks=[{ModelCheckpoint: {monitor: val/loss, save_weights_only: true, "
                           "save_last: true}}]")
    contents = load_checkpoint(result.best_model_path)
    assert {"spec", "state_dict", "epoch", "global_step"} <= set(contents) and contents["weights_only"] is True
    assert not {"optimizer_states", "lr_schedulers", "loop", "callbacks"} & set(contents)
    assert load_checkpoint(result.last_model_path)["weights_only"] is True
    # dtrain test: the run tested this very file
    assert checkpoint_test_metrics(result.best_model_path, console=quiet()) == result.test_metrics
    # dtrain predict and export read it as they read a full checkpoint
    trained = load_trained(result.best_model_path)
    x = torch.randn(5, 4)
    predicted = predict(trained, Inputs([str(i) for i in range(5)], x), device=torch.device("cpu"), batch_size=4,
                        console=quiet())
    assert torch.allclose(predicted.outputs, trained.model(x).detach(), atol=1e-6)
    exported = export_trained(trained, "torchscript", tmp_path / "model.ts")
    assert exported.path.exists()
    # a resume says why it cannot, and what to do instead
    with pytest.raises(SpecError, match=r"holds the weights only \(ModelCheckpoint save_weights_only: true\).*"
                                        r"model.init_from"):
        fit_spec(make_spec(tmp_path, "trainer.max_epochs=3"), console=quiet(), resume_from=result.best_model_path)
    with pytest.raises(SpecError, match="no checkpoint to resume from"):
        from declarative.assembly.resume import find_checkpoint

        find_checkpoint(result.run_dir)


def test_save_last_link_points_at_the_latest_checkpoint_saved(tmp_path, monkeypatch):
    result = run(tmp_path, "trainer.max_epochs=3", "callbacks=[{ModelCheckpoint: {save_top_k: -1, save_last: link}}]")
    last = result.run_dir / "checkpoints" / "last.ckpt"
    assert last.is_symlink() and os.readlink(last) == "epoch=2-step=9.ckpt"  # relative: the run folder may move
    assert results(result)["last_model_path"] == str(last)
    # a resume from the link goes on in the run folder, and the link follows the new saves
    spec = make_spec(tmp_path, "trainer.max_epochs=4", "callbacks=[{ModelCheckpoint: {save_top_k: -1, save_last: link}}]")
    resumed = fit_spec(spec, console=quiet(), resume_from=last)
    assert resumed.run_dir == result.run_dir and os.readlink(last) == "epoch=3-step=12.ckpt"
    # ranked: the link follows the best, and never points at a removed file
    ranked = run(tmp_path, "trainer.max_epochs=3", "callbacks=[{ModelCheckpoint: {monitor: val/loss, mode: max, "
                                                   "save_last: link}}]")
    link = ranked.run_dir / "checkpoints" / "last.ckpt"
    assert link.resolve() == (ranked.run_dir / "checkpoints" / os.path.basename(ranked.best_model_path)).resolve()
    assert link.exists()

    def no_symlinks(*args, **kwargs):
        raise OSError("symbolic links are not supported here")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    copied = run(tmp_path, "callbacks=[{ModelCheckpoint: {save_last: link}}]")
    last = copied.run_dir / "checkpoints" / "last.ckpt"
    assert not last.is_symlink() and last.read_bytes() == (copied.run_dir / "checkpoints" / "epoch=1-step=6.ckpt").read_bytes()
    assert checkpoint_names(copied) == ["epoch=1-step=6.ckpt", "last.ckpt"]  # no temp file left behind


def test_verbose_prints_lightnings_lines_for_each_ranked_save(tmp_path):
    console = Console(file=io.StringIO(), width=1000)  # the long path on one line
    # lr 0: val/loss is the same every epoch, so only the first one ranks (a tie does not replace the best)
    result = run(tmp_path, "optimizer={SGD: {lr: 0.0}}", "callbacks=[{ModelCheckpoint: {monitor: val/loss, "
                           "verbose: true}}]", console=console)
    text = console.file.getvalue()
    loss = result.val_metrics["val/loss"]
    path = result.run_dir / "checkpoints" / "epoch=0-step=3.ckpt"
    assert (f"Epoch 0, global step 3: 'val/loss' reached {loss:0.5f} (best {loss:0.5f}), saving model to "
            f"'{path}' as top 1") in text
    assert "Epoch 1, global step 6: 'val/loss' was not in top 1" in text
    quiet_console = quiet()
    run(tmp_path, "callbacks=[{ModelCheckpoint: {monitor: val/loss}}]", console=quiet_console)
    assert "saving model to" not in quiet_console.file.getvalue()


def test_auto_insert_metric_name_false_writes_the_values_alone(tmp_path):
    template = "'epoch{epoch:02d}-loss{val/loss:.2f}'"
    plain = run(tmp_path, f"callbacks=[{{ModelCheckpoint: {{filename: {template}, auto_insert_metric_name: false}}}}]")
    loss = plain.val_metrics["val/loss"]
    assert checkpoint_names(plain) == [f"epoch01-loss{loss:.2f}.ckpt"]  # Lightning's documented example
    named = run(tmp_path, "callbacks=[{ModelCheckpoint: {filename: '{epoch}-{val/loss:.2f}'}}]")
    assert checkpoint_names(named) == [f"epoch=1-val_loss={named.val_metrics['val/loss']:.2f}.ckpt"]  # `/` → `_`


def test_the_version_counter_keeps_both_files_of_one_name_and_false_overwrites(tmp_path):
    # 3 steps an epoch; a save every 2 steps: steps 2 (epoch 0), 4 and 6 (both epoch 1) under "{epoch}"
    each = "{ModelCheckpoint: {filename: '{epoch}', every_n_train_steps: 2, save_top_k: -1"
    counted = run(tmp_path, f"callbacks=[{each}}}}}]")
    assert checkpoint_names(counted) == ["epoch=0.ckpt", "epoch=1-v1.ckpt", "epoch=1.ckpt"]
    assert load_checkpoint(counted.run_dir / "checkpoints" / "epoch=1-v1.ckpt")["global_step"] == 6
    overwritten = run(tmp_path, f"callbacks=[{each}, enable_version_counter: false}}}}]")
    assert checkpoint_names(overwritten) == ["epoch=0.ckpt", "epoch=1.ckpt"]
    assert load_checkpoint(overwritten.run_dir / "checkpoints" / "epoch=1.ckpt")["global_step"] == 6


class FailAtStep(Callback):
    """Raises after the optimizer step `step`, as a crash in the middle of training would."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("the disk went away")


def test_save_on_exception_saves_the_state_when_training_fails(tmp_path, monkeypatch):
    build = run_module.build_callbacks
    monkeypatch.setattr(run_module, "build_callbacks", lambda spec: build(spec) + [FailAtStep(4)])
    console = quiet()
    with pytest.raises(RuntimeError, match="the disk went away"):
        run(tmp_path, "callbacks=[{ModelCheckpoint: {save_on_exception: true, save_top_k: 0}}]", console=console)
    folder = next((tmp_path / "runs" / "tiny").iterdir()) / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=1-step=4.ckpt"]
    assert load_checkpoint(folder / "epoch=1-step=4.ckpt")["global_step"] == 4
    assert f"RuntimeError stopped training: saved {folder / 'epoch=1-step=4.ckpt'}" in console.file.getvalue()
    with pytest.raises(RuntimeError):  # off (the default): nothing saved
        run(tmp_path, "callbacks=[{ModelCheckpoint: {save_top_k: 0}}]")
    assert not any((tmp_path / "runs" / "tiny" / "version_1" / "checkpoints").iterdir())
