"""Self-supervised targets and ordered data: an autoencoder whose targets are its inputs (Lightning's
LitAutoEncoder), chronological splits, and a windowed series that an LSTM forecasts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from declarative.data import build_data
from declarative.errors import SpecError
from declarative.run import fit_spec
from declarative.spec.validate import load_spec
from trainer_specs import quiet

SPECS = Path(__file__).resolve().parents[1] / "specs"


def test_targets_inputs_are_the_clean_samples_and_the_noise_reaches_the_inputs_only(tmp_path):
    spec = load_spec(SPECS / "autoencoder_digits.yaml")
    data = build_data(spec)
    digits = np.load(SPECS / "data" / "digits.npz")["inputs"]
    assert data.target_shape == (1, 8, 8) and data.target_dtype == torch.float32 and data.num_classes is None
    x, y = next(iter(data.val))
    assert y.min() >= 0 and y.max() <= 1 and y.mul(16).round().to(torch.uint8).flatten(1).tolist()[0] in \
        digits.reshape(len(digits), -1).tolist()
    noise = x - y
    assert 0.08 < noise.std().item() < 0.12  # GaussianNoise sigma 0.1, on the inputs alone


def test_the_autoencoder_spec_trains_with_targets_inputs(tmp_path):
    spec = load_spec(SPECS / "autoencoder_digits.yaml", ["trainer.max_epochs=4", "logger=false",
                                                         "trainer.enable_progress_bar=false", "optimizer={Adam: {lr: 0.01}}",
                                                         f"trainer.default_root_dir={tmp_path / 'runs'}"])
    result = fit_spec(spec, console=quiet())
    assert spec.task == "regression" and spec.loss.name == "MSELoss"
    clean = torch.from_numpy(np.load(SPECS / "data" / "digits.npz")["inputs"]).float() / 16
    mean_image_mse = (clean - clean.mean(0)).pow(2).mean().item()  # a model that learned nothing per sample
    assert result.test_metrics["test/mse"] < 0.8 * mean_image_mse


def write_series(path: Path, steps: int = 400) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(steps)
    values = np.sin(2 * np.pi * t / 25) + 0.5 * np.sin(2 * np.pi * t / 60) + rng.normal(0, 0.05, steps)
    path.write_text("step,value\n" + "".join(f"{i},{v:.4f}\n" for i, v in zip(t, values)))
    return values


FORECAST = """\
seed: 0
data:
  source: {Windows: {path: series.csv, columns: [value], lookback: 16, horizon: 1}}
  val: {fraction: 0.15, order: last}
  test: {fraction: 0.15, order: last}
  batch_size: 32
  eval_batch_size: 1000
model:
  layers:
    - LSTM: {hidden_size: 16, batch_first: true}
      output: 0
    - select: {dim: 1, index: -1}
    - Linear: {out_features: 1}
optimizer: {Adam: {lr: 0.02}}
trainer: {max_epochs: 8, enable_progress_bar: false}
logger: false
"""


def test_windows_cut_a_series_and_order_last_keeps_the_latest_windows_for_testing(tmp_path):
    values = write_series(tmp_path / "series.csv", steps=100)
    (tmp_path / "f.yaml").write_text(FORECAST)
    data = build_data(load_spec(tmp_path / "f.yaml"))
    n = 100 - 16  # windows of 16 steps and the one after
    assert (len(data.train.inputs), len(data.val.inputs), len(data.test.inputs)) == (n - 26, 13, 13)
    assert data.train.inputs.shape[1:] == (16, 1) and data.train.targets.shape[1:] == (1,)
    assert data.test.inputs[-1, :, 0].tolist() == pytest.approx(values[-17:-1], abs=1e-4)  # the series' end
    assert data.test.targets[-1].item() == pytest.approx(values[-1], abs=1e-4)
    assert data.val.targets[-1].item() == pytest.approx(values[n - 13 - 1 + 16], abs=1e-4)  # just before test


def test_a_windowed_lstm_forecaster_beats_the_last_value_baseline(tmp_path):
    write_series(tmp_path / "series.csv")
    (tmp_path / "f.yaml").write_text(FORECAST)
    spec = load_spec(tmp_path / "f.yaml", [f"trainer.default_root_dir={tmp_path / 'runs'}"])
    result = fit_spec(spec, console=quiet())
    test = build_data(load_spec(tmp_path / "f.yaml")).test
    last_value_mse = (test.inputs[:, -1, 0] - test.targets[:, 0]).pow(2).mean().item()
    assert result.test_metrics["test/mse"] < 0.5 * last_value_mse


def test_order_last_with_stratify_or_a_short_series_is_a_located_error(tmp_path):
    write_series(tmp_path / "series.csv", steps=10)
    (tmp_path / "f.yaml").write_text(FORECAST)
    with pytest.raises(SpecError, match="the series has 10 time steps, fewer than lookback \\+ horizon = 17"):
        build_data(load_spec(tmp_path / "f.yaml"))
    (tmp_path / "f.yaml").write_text(FORECAST.replace("order: last}", "order: last, stratify: true}", 1))
    with pytest.raises(SpecError, match="f.yaml:4:32: order: last takes the last samples in their order, and stratify"):
        load_spec(tmp_path / "f.yaml")


def write_three_class_table(path: Path, soft: bool) -> None:
    rng = np.random.default_rng(0)
    rows = ["a,b,p0,p1,p2"]
    for a, b in rng.normal(size=(90, 2)):
        scores = np.array([a, b, -a - b]) * 3
        probabilities = np.exp(scores) / np.exp(scores).sum()
        target = probabilities if soft else np.eye(3)[probabilities.argmax()]
        rows.append(f"{a:.3f},{b:.3f}," + ",".join(f"{v:.4f}" if soft else str(int(v)) for v in target))
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("soft", [False, True], ids=["one-hot", "probabilities"])
def test_one_hot_or_probability_targets_train_a_cross_entropy_classifier(tmp_path, soft):
    write_three_class_table(tmp_path / "t.csv", soft)
    (tmp_path / "t.yaml").write_text(
        "seed: 0\ndata:\n  source: {CSV: {path: t.csv, targets: [p0, p1, p2], inputs: [a, b]}}\n"
        "  test: {fraction: 0.2}\nmodel: {layers: [{Linear: {out_features: 16}}, ReLU, {Linear: {out_features: 3}}]}\n"
        "loss: CrossEntropyLoss\noptimizer: {Adam: {lr: 0.05}}\n"
        f"trainer: {{max_epochs: 6, enable_progress_bar: false, default_root_dir: {tmp_path / 'runs'}}}\nlogger: false\n")
    spec = load_spec(tmp_path / "t.yaml")
    data = build_data(spec)
    assert data.target_dtype == torch.float32 and data.target_shape == (3,)
    result = fit_spec(load_spec(tmp_path / "t.yaml"), console=quiet())
    assert result.test_metrics["test/accuracy"] > 0.6  # three classes: chance is a third


def test_targets_inputs_take_normalize_statistics_computed_from_the_training_split(tmp_path):
    (tmp_path / "ae.yaml").write_text(
        f"seed: 0\ndata:\n  source: {{ArrayFile: {{path: {SPECS / 'data' / 'digits.npz'}}}}}\n  targets: inputs\n"
        "  transforms: [{ToDtype: {dtype: float32}}, {Normalize: {mean: auto, std: auto}}]\n"
        "model: {layers: [Flatten, {Linear: {out_features: 64}}, {reshape: {shape: [-1, 1, 8, 8]}}]}\noptimizer: SGD\n")
    spec = load_spec(tmp_path / "ae.yaml")
    data = build_data(spec)
    mean, std = spec.data.transforms[1].kwargs["mean"][0], spec.data.transforms[1].kwargs["std"][0]
    x, y = next(iter(data.val or data.train))
    assert torch.equal(x, y) and abs(data.train.targets.mean().item()) < 1e-5
    assert mean == pytest.approx(4.88, abs=0.01) and std > 1
