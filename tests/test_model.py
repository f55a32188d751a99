"""Layer registry, shape inference on the meta device, the built model, `dtrain summary`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from declarative.model.builder import build_model, plan_model
from declarative.model.layers import LAYERS
from declarative.spec.validate import load_spec
from specs import mlp_text, write_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"


def test_registry_covers_torch_nn_layers_with_their_arguments():
    for name in ["Linear", "Conv2d", "BatchNorm2d", "LSTM", "GRU", "Embedding", "MultiheadAttention",
                 "TransformerEncoderLayer", "LayerNorm", "Dropout", "MaxPool2d", "Flatten", "GELU"]:
        assert name in LAYERS, name
    conv = LAYERS["Conv2d"]
    assert conv.required == ["out_channels", "kernel_size"]  # in_channels is inferred
    assert conv.params["padding_mode"].schema["enum"] == ["zeros", "reflect", "replicate", "circular"]
    assert set(LAYERS["LSTM"].params) >= {"input_size", "hidden_size", "num_layers", "batch_first"}
    assert "Module" not in LAYERS and "CrossEntropyLoss" not in LAYERS and "LazyLinear" not in LAYERS


def test_mnist_cnn_has_the_articles_parameter_count():
    plan = plan_model(load_spec(SPECS / "mnist_cnn.yaml"))
    assert plan.parameters == 1_199_882
    assert [n.output_shape for n in plan.nodes][:5] == [(32, 26, 26), (32, 26, 26), (64, 24, 24), (64, 24, 24),
                                                         (64, 12, 12)]
    assert plan.nodes[7].inferred == {"in_features": 9216}


def test_built_model_matches_hand_written_sequential(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    model = build_model(spec)
    reference = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    reference.load_state_dict({k.removeprefix("layers."): v for k, v in model.state_dict().items()})
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(model(x), reference(x))
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_inferred_arguments_for_channels_features_and_sequences(tmp_path):
    text = mlp_text().replace("""    - Flatten
    - Linear: {out_features: 32}
    - ReLU
""", """    - Conv2d: {out_channels: 6, kernel_size: 3, padding: 1}
    - BatchNorm2d
    - GroupNorm: {num_groups: 3}
    - Flatten: {start_dim: 2}
    - LayerNorm
    - Linear: {out_features: 12}
""").replace("    - Linear: {out_features: 10}\n", "")
    plan = plan_model(load_spec(write_spec(tmp_path, text), semantic=False))
    assert [n.inferred for n in plan.nodes[:5]] == [
        {"in_channels": 1}, {"num_features": 6}, {"num_channels": 6}, {}, {"normalized_shape": 64}]
    assert plan.nodes[4].output_shape == (6, 64)
    assert plan.nodes[5].inferred == {"in_features": 64} and plan.nodes[5].output_shape == (6, 12)


def test_layers_returning_tuples_are_a_located_error(tmp_path):
    text = mlp_text().replace("    - Linear: {out_features: 10}\n", "    - LSTM: {hidden_size: 4}\n")
    from declarative.errors import SpecError

    with pytest.raises(SpecError, match=r"spec.yaml:15:7: layer 3 \(LSTM\) returns a tuple"):
        load_spec(write_spec(tmp_path, text))


def test_planning_a_large_model_allocates_nothing(tmp_path):
    """A 400M-parameter model plans on the meta device: no memory, the count is still exact."""
    text = mlp_text().replace("Linear: {out_features: 32}", "Linear: {out_features: 20000}").replace(
        "    - ReLU\n", "    - ReLU\n    - Linear: {out_features: 20000}\n")
    plan = plan_model(load_spec(write_spec(tmp_path, text), semantic=False))
    assert plan.parameters == (64 * 20000 + 20000) + (20000 * 20000 + 20000) + (20000 * 10 + 10)


def test_summary_prints_shapes_and_the_total():
    result = subprocess.run([sys.executable, "-m", "declarative", "summary", str(SPECS / "mnist_cnn.yaml")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Total params: 1,199,882" in result.stdout
    assert "Linear (in_features=9216)" in result.stdout
    assert "[N, 64, 12, 12]" in result.stdout
