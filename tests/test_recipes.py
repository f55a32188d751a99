"""Training recipes in a spec: parameter groups, freezing, new heads, scheduler chains, weight averaging,
MixUp/CutMix, initializers, channels_last; and the two recipe specs, trained a few steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from declarative.errors import SpecError
from declarative.model.builder import build_model
from declarative.spec.validate import load_spec
from declarative.training.param_groups import param_groups
from specs import write_arrays

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
name: recipe
seed: 0
data:
  source: {{ArrayFile: {{path: {data}}}}}
  transforms: [{{ToDtype: {{dtype: float32}}}}]
  val: {{fraction: 0.25}}
  batch_size: 16
model:
  input: [3, 8, 8]
  layers:
    - Conv2d: {{out_channels: 4, kernel_size: 3, padding: 1}}
      name: stem
    - BatchNorm2d
    - ReLU
    - Flatten
    - Linear: {{out_features: 4}}
loss: CrossEntropyLoss
trainer: {{max_steps: 3, enable_progress_bar: false, accelerator: cpu, num_sanity_val_steps: 0}}
logger: false
"""


def write(tmp_path: Path, extra: str = "", **changes: str) -> Path:
    """The small conv spec with `extra` appended and `changes` replacing text in it, on test-written data."""
    data = tmp_path / "data.npz"
    if not data.exists():
        write_arrays(data, n=64, shape=(3, 8, 8), classes=4)
    text = SPEC.format(data=data) + extra
    for old, new in changes.items():
        text = text.replace(old.replace("_", " "), new)
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def error_of(path: Path, build=None) -> str:
    with pytest.raises(SpecError) as info:
        spec = load_spec(path)
        if build:
            build(spec)
    return str(info.value)


# -- parameter groups ------------------------------------------------------------------------------------------


def fit(path: Path, *overrides: str):
    from declarative.run import fit_spec

    spec = load_spec(path, [f"trainer.default_root_dir={path.parent / 'runs'}", *overrides])
    return fit_spec(spec)


def saved(result) -> dict:
    from declarative.training.checkpoint import load_checkpoint

    return load_checkpoint(result.last_model_path)


NO_DECAY = """\
optimizer:
  SGD: {lr: 0.1, momentum: 0.9, weight_decay: 0.01}
  param_groups:
    - params: {type: BatchNorm2d, bias: true}
      weight_decay: 0
    - params: {names: 'layers.0.weight'}
      lr: 0.01
"""


def test_no_decay_group_takes_norm_layers_and_biases_with_weight_decay_zero(tmp_path):
    result = fit(write(tmp_path, NO_DECAY))
    state = saved(result)["optimizer_states"][0]
    groups = state["param_groups"]
    shapes = [[tuple(state["state"][i]["momentum_buffer"].shape) for i in g["params"]] for g in groups]
    # the rest (the Linear weight); conv bias, BatchNorm weight and bias, Linear bias; the conv weight
    assert shapes == [[(4, 256)], [(4,), (4,), (4,), (4,)], [(4, 3, 3, 3)]]
    assert [g["weight_decay"] for g in groups] == [0.01, 0, 0.01]
    assert [g["lr"] for g in groups] == [0.1, 0.1, 0.01]
    assert result.global_step == 3


@pytest.mark.parametrize("group, message", [
    ("{params: {layers: stem}, lr: 0.01}", "layers.0.bias is in group 0 already"),
    ("{params: {names: 'layer.9.*'}}", "'layer.9.*' matches no parameter of the model"),
    ("{params: {type: LayerNorm}}", "no layer of type 'LayerNorm' with parameters is in the model "
                                            "(its layers with parameters: BatchNorm2d, Conv2d, Linear)"),
    ("{params: {layers: stme}}", "no layer is named 'stme' — did you mean 'stem'?"),
    ("{params: {bias: true}, momentun: 0.5}", "SGD has no argument 'momentun' — did you mean 'momentum'?"),
    ("{params: {bias: true}, lr: -1}", "lr must be"),
])
def test_param_group_mistakes_are_located(tmp_path, group, message):
    from declarative.training.components import OPTIMIZERS

    path = write(tmp_path, NO_DECAY.replace("{names: 'layers.0.weight'}\n      lr: 0.01", "") .replace(
        "    - params: \n", f"    - {group}\n"))
    def build(spec):
        OPTIMIZERS.build_component(spec.optimizer, spec, params=param_groups(build_model(spec), spec.optimizer, spec))
    text = error_of(path, build)
    assert "spec.yaml:25:" in text and message in text, text
