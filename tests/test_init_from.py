"""Warm starts: `model.init_from` loads a checkpoint's (or a state dict's) weights before training."""

from __future__ import annotations

import torch

from declarative.run import fit_spec
from declarative.safe_load import load_weights_only
from declarative.spec.validate import load_spec
from specs import mlp_text
from test_combined import dtrain
from trainer_specs import quiet


def _fit(tmp_path, *overrides: str):
    (tmp_path / "tiny.yaml").write_text(mlp_text())
    spec = load_spec(tmp_path / "tiny.yaml", [f"trainer.default_root_dir={tmp_path / 'runs'}", "logger=false",
                                              *overrides])
    return fit_spec(spec, console=quiet())


def test_a_warm_start_from_a_first_runs_checkpoint_continues_from_its_accuracy(tmp_path):
    first = _fit(tmp_path, "trainer.max_epochs=1", "trainer.enable_checkpointing=true")
    accuracy = first.val_metrics["val/accuracy"]
    assert accuracy > 0.5
    # lr 0: the weights stay as loaded, so the second run validates exactly as the first one ended
    frozen = ["trainer.max_epochs=1", "optimizer={SGD: {lr: 0.0}}"]
    warm = _fit(tmp_path, *frozen, f"model.init_from={first.run_dir}/last")
    assert warm.val_metrics["val/accuracy"] == accuracy
    cold = _fit(tmp_path, *frozen)
    assert cold.val_metrics["val/accuracy"] < 0.3  # chance is 0.1: the warm run's accuracy came from the weights

    # a state dict saved under other names: prefix maps them to the model's
    state = load_weights_only(first.last_model_path)["state_dict"]
    torch.save({k.replace("layers.", "net.", 1): v for k, v in state.items()}, tmp_path / "renamed.pth")
    mapped = _fit(tmp_path, *frozen, "model.init_from={path: renamed.pth, prefix: {'net.': 'layers.'}}")
    assert mapped.val_metrics["val/accuracy"] == accuracy


def test_weights_of_other_shapes_or_names_are_a_located_error_listing_the_keys(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    torch.save({f"layers.{k}": v for k, v in model.state_dict().items()}, tmp_path / "narrow.pth")
    spec = mlp_text().replace("model:\n", "model:\n  init_from: narrow.pth\n")
    (tmp_path / "tiny.yaml").write_text(spec)
    result = dtrain("run", "tiny.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"tiny.yaml:10:14: {tmp_path / 'narrow.pth'}: tensors of other shapes than the model's: layers.1.weight "
        "[16, 64] (model: [32, 64]), layers.1.bias [16] (model: [32]), layers.3.weight [10, 16] (model: [10, 32])")
    assert not (tmp_path / "runs").exists()

    torch.save({"head.weight": torch.zeros(10, 32)}, tmp_path / "other.pth")
    result = dtrain("run", "tiny.yaml", "model.init_from=other.pth", cwd=tmp_path)
    assert result.returncode == 1
    assert "keys differ — the model's layers.1.weight, layers.1.bias, layers.3.weight, layers.3.bias not in the " \
           "file; the file's head.weight not in the model (map prefixes with prefix: {old: new}, or load what " \
           "matches with strict: false)" in result.stderr, result.stderr


TORCHVISION = """\
name: tv
data:
  source: {Synthetic: {shape: [3, 32, 32], size: 16, num_classes: 3}}
  transforms: [{ToDtype: {dtype: float32}}]
model:
  input: [3, 32, 32]
  layers:
    - mobilenet_v3_small: {weights: mnv3.pth, num_classes: 3}
optimizer: {SGD: {lr: 0.0}}
"""


def test_a_torchvision_layer_takes_its_weights_from_a_local_file(tmp_path, monkeypatch):
    import pytest
    import torchvision

    from declarative.errors import SpecError
    from declarative.model.builder import build_model

    monkeypatch.chdir(tmp_path)  # the file is found relative to the current folder
    saved = torchvision.models.mobilenet_v3_small(num_classes=3).state_dict()
    torch.save(saved, "mnv3.pth")
    (tmp_path / "tv.yaml").write_text(TORCHVISION)
    model = build_model(load_spec(tmp_path / "tv.yaml"))
    loaded = model.layers[0].state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved.items())

    with pytest.raises(SpecError) as error:
        load_spec(tmp_path / "tv.yaml", ["model.layers=[{mobilenet_v3_small: {weights: mnv3.pth, num_classes: 4}}]"])
    assert "mnv3.pth does not fit the model (keys missing, extra or of another shape: classifier.3.weight, " \
           "classifier.3.bias); num_classes must match the file's" in str(error.value)
