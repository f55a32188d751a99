"""The model language: wiring (name / input / output), residual, parallel, repeat, blocks, torch functions,
`${...}` references to block parameters and data values, torchvision models; planning, building, errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from declarative.errors import SpecError
from declarative.model.builder import build_model, plan_model
from declarative.model.graph import LayerList
from declarative.spec.validate import load_spec
from specs import write_arrays

ROOT = Path(__file__).resolve().parents[1]

HEAD = """\
name: graph
seed: 0
data:
  source: {{ArrayFile: {{path: {data}}}}}
  transforms: [{{ToDtype: {{dtype: float32}}}}]
  batch_size: 16
loss: CrossEntropyLoss
optimizer: {{Adam: {{lr: 1.0e-3}}}}
trainer: {{max_steps: 1, enable_progress_bar: false}}
model:
"""


def spec_file(tmp_path: Path, model: str, shape=(3, 8, 8), classes: int = 4) -> Path:
    """A spec whose model section is `model` (indented under `model:`), on a small .npz data file."""
    data = write_arrays(tmp_path / "data.npz", n=48, shape=shape, classes=classes)
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD.format(data=data) + model)
    return path


def spec_error(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return str(info.value)


def dtrain(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "declarative", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=ROOT, timeout=300)


RESNET_1000 = ["model.input=[3,224,224]", "model.layers.13.Linear.out_features=1000"]


# -- the ResNet-18 spec --------------------------------------------------------------------------------


def test_resnet18_from_layers_has_torchvisions_parameter_count_in_the_summary():
    result = dtrain("summary", "specs/resnet18_cifar10.yaml", *RESNET_1000)
    assert result.returncode == 0, result.stderr
    assert "Total params: 11,689,512" in result.stdout
    assert "Params size (float32): 46.76 MB" in result.stdout
    # nested nodes under their module names, indented under their parents
    assert re.search(r"│ 4\.0\.0\.layers\.0 +│       Conv2d \(in_channels=64\) +│ \[N, 64, 56, 56\] +│ +36,864 │",
                     result.stdout)
    assert re.search(r"│ 5\.0\.shortcut\.0 +│     Conv2d \(in_channels=64\) +│ \[N, 128, 28, 28\] +│ +8,192 │",
                     result.stdout)


def test_resnet18_state_dict_has_torchvisions_tensors_in_order_under_nested_names():
    import torchvision

    model = build_model(load_spec(ROOT / "specs" / "resnet18_cifar10.yaml", RESNET_1000))
    ours, theirs = model.state_dict(), torchvision.models.resnet18().state_dict()
    assert [v.shape for v in ours.values()] == [v.shape for v in theirs.values()]
    assert list(ours)[:2] == ["layers.0.weight", "layers.1.weight"]
    assert "layers.4.1.0.layers.3.weight" in ours  # repeat 4, copy 1, block item 0 (residual), its conv 3
    assert "layers.5.0.shortcut.0.weight" in ours  # the projection of the first DownBlock
    # the same weights give the same outputs: the graph is torchvision's
    model.load_state_dict(dict(zip(ours, theirs.values())))
    reference = torchvision.models.resnet18().eval()
    reference.load_state_dict(theirs)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(model.eval()(x), reference(x))


# -- the example specs train ---------------------------------------------------------------------------

EXAMPLES = {
    "resnet18_cifar10.yaml": ["data.source={Synthetic: {shape: [3, 32, 32], size: 32, test_size: 16, num_classes: 10}}"],
    "unet_segmentation.yaml": ["data.source={Synthetic: {shape: [3, 16, 16], size: 32, test_size: 16, "
                               "task: segmentation, num_classes: 3}}"],
    "lstm_mnist.yaml": ["data.source={ArrayFile: {path: DATA}}", "data.test={fraction: 0.25}"],
    "transformer_mnist.yaml": ["data.source={ArrayFile: {path: DATA}}", "data.test={fraction: 0.25}"],
}
QUICK = ["trainer.max_epochs=1", "trainer.max_steps=1", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
         "trainer.num_sanity_val_steps=0", "trainer.enable_progress_bar=false", "trainer.precision=32-true",
         "trainer.accelerator=cpu", "logger=false", "data.batch_size=8"]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_spec_summarizes_and_trains_a_step(name, tmp_path):
    from declarative.run import fit_spec

    data = write_arrays(tmp_path / "digits28.npz", n=64, shape=(1, 28, 28), classes=10)
    overrides = [o.replace("DATA", str(data)) for o in EXAMPLES[name]]
    spec = load_spec(ROOT / "specs" / name, [*overrides, *QUICK, f"trainer.default_root_dir={tmp_path}"])
    plan = plan_model(spec)
    assert plan.parameters > 0 and plan.output_shape[0] in (3, 10)
    result = fit_spec(spec)
    assert result.global_step == 1
    assert (result.run_dir / "spec.yaml").is_file()


def test_every_example_spec_validates_through_the_cli():
    specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
    result = dtrain("validate", *specs)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


# -- constructs: plans, modules and what they compute --------------------------------------------------


def test_residual_with_projection_and_parallel_branches_compute_what_they_say(tmp_path):
    path = spec_file(tmp_path, """\
  input: [3, 8, 8]
  layers:
    - residual:
        layers:
          - Conv2d: {out_channels: 6, kernel_size: 3, stride: 2, padding: 1}
        shortcut:
          - Conv2d: {out_channels: 6, kernel_size: 1, stride: 2}
    - parallel:
        branches:
          - [{Conv2d: {out_channels: 2, kernel_size: 1}}]
          - [Identity]
        merge: {cat: {dim: 1}}
    - Flatten
    - Linear: {out_features: 4}
""")
    spec = load_spec(path)
    plan = plan_model(spec)
    assert [n.output_shape for n in plan.nodes] == [(6, 4, 4), (8, 4, 4), (128,), (4,)]
    assert plan.nodes[0].parameters == (6 * 3 * 9 + 6) + (6 * 3 + 6)
    assert [c.name for _, c in plan.nodes[1].walk()] == ["1", "1.branches.0.0", "1.branches.1.0", "1.merge"]
    model = build_model(spec, plan)
    keys = list(model.state_dict())
    assert keys[:4] == ["layers.0.layers.0.weight", "layers.0.layers.0.bias", "layers.0.shortcut.0.weight",
                        "layers.0.shortcut.0.bias"]
    assert "layers.1.branches.0.0.weight" in keys
    x = torch.randn(2, 3, 8, 8)
    residual, parallel = model.layers[0], model.layers[1]
    y = residual.layers[0](x) + residual.shortcut[0](x)
    torch.testing.assert_close(residual(x), y)
    torch.testing.assert_close(parallel(y), torch.cat([parallel.branches[0][0](y), y], dim=1))


def test_named_outputs_feed_later_layers_and_a_plain_chain_keeps_the_fast_path(tmp_path):
    path = spec_file(tmp_path, """\
  input: auto
  layers:
    - Conv2d: {out_channels: 4, kernel_size: 3, padding: 1}
      name: skip
    - ReLU
    - Conv2d: {out_channels: 4, kernel_size: 3, padding: 1}
      name: deep
    - add:
      input: [deep, skip]
    - mean: {dim: [2, 3]}
    - Linear: {out_features: "${data.num_classes}"}
""")
    spec = load_spec(path)
    model = build_model(spec)
    assert model.layers.wiring is not None
    x = torch.randn(2, 3, 8, 8)
    conv1, _, conv2 = model.layers[0], model.layers[1], model.layers[2]
    skip = conv1(x)
    expected = model.layers[5]((conv2(torch.relu(skip)) + skip).mean(dim=(2, 3)))
    torch.testing.assert_close(model(x), expected)
    chain = build_model(load_spec(spec_file(tmp_path, "  layers: [Flatten, {Linear: {out_features: 4}}]\n")))
    assert isinstance(chain.layers, LayerList) and chain.layers.wiring is None


def test_lstm_output_element_and_multihead_attention_with_query_key_value(tmp_path):
    path = spec_file(tmp_path, """\
  input: [5, 6]
  layers:
    - Linear: {out_features: 8}
      name: tokens
    - MultiheadAttention: {num_heads: 2, batch_first: true}
      input: [tokens, tokens, tokens]
      output: 0
    - LSTM: {hidden_size: 3, batch_first: true}
      output: [1, 0]                # (output, (h_n, c_n)) → h_n
    - select: {dim: 0, index: -1}
    - Linear: {out_features: 4}
""", shape=(5, 6))
    plan = plan_model(load_spec(path))
    assert [n.output_shape for n in plan.nodes] == [(5, 8), (5, 8), (2, 3), (3,), (4,)]
    assert plan.nodes[1].inferred == {"embed_dim": 8} and plan.nodes[2].inferred == {"input_size": 8}


def test_torch_functions_keep_torch_names_and_meanings(tmp_path):
    path = spec_file(tmp_path, """\
  input: [3, 8, 8]
  layers:
    - reshape: {shape: [-1, 3, 64]}
    - permute: {dims: [0, 2, 1]}
    - transpose: {dim0: 1, dim1: 2}
    - unsqueeze: {dim: 1}
    - squeeze: {dim: 1}
    - view: {size: [-1, 192]}
    - narrow: {dim: 1, start: 0, length: 30}
    - Linear: {out_features: 4}
""")
    plan = plan_model(load_spec(path))
    assert [n.output_shape for n in plan.nodes] == [(3, 64), (64, 3), (3, 64), (1, 3, 64), (3, 64), (192,),
                                                     (30,), (4,)]
    from typer.testing import CliRunner

    from declarative.cli import app

    out = CliRunner().invoke(app, ["layers", "*"]).stdout  # `dtrain layers`, piped: one line per entry
    for listed in ("residual(layers!, shortcut)", "parallel(branches!, merge!)", "repeat(times!, layers!)",
                   "cat(dim)", "select(dim!, index!)", "permute(dims!)", "resnet18(weights, num_classes, head)"):
        assert listed in out, listed


def test_blocks_take_parameters_and_repeat_copies_weights_of_their_own(tmp_path):
    path = spec_file(tmp_path, """\
  input: [3, 8, 8]
  blocks:
    ConvBN:
      params: {channels: null, kernel: 3}
      layers:
        - Conv2d: {out_channels: "${channels}", kernel_size: "${kernel}", padding: 1}
        - BatchNorm2d
  layers:
    - ConvBN: {channels: 5}
    - repeat:
        times: 3
        layers: [{ConvBN: {channels: 5}}, ReLU]
    - Flatten
    - Linear: {out_features: 4}
""")
    spec = load_spec(path)
    plan = plan_model(spec)
    one = 5 * 3 * 9 + 5 + 10
    assert plan.nodes[0].parameters == one and plan.nodes[1].parameters == 3 * (5 * 5 * 9 + 5 + 10)
    model = build_model(spec, plan)
    copies = [model.layers[1][r][0][0].weight for r in range(3)]
    assert copies[0] is not copies[1] and not torch.equal(copies[0], copies[1])
    assert "layers.1.2.0.1.running_mean" in model.state_dict()


# -- data values -----------------------------------------------------------------------------------------


def test_data_values_follow_the_data(tmp_path):
    model = """\
  layers:
    - Flatten
    - Linear: {out_features: "${data.num_classes}"}
"""
    plan = plan_model(load_spec(spec_file(tmp_path, model, shape=(2, 5), classes=7)))
    assert plan.input_shape == (2, 5) and plan.output_shape == (7,)
    plan = plan_model(load_spec(spec_file(tmp_path, model, shape=(3, 4, 4), classes=3)))
    assert plan.input_shape == (3, 4, 4) and plan.output_shape == (3,)
    assert plan.nodes[1].inferred == {"in_features": 48}
    spliced = model.replace("    - Flatten\n", '    - reshape: {shape: [-1, "${data.input_shape}"]}\n    - Flatten\n')
    plan = plan_model(load_spec(spec_file(tmp_path, spliced, shape=(3, 4, 4), classes=3)))
    assert plan.nodes[0].kwargs == {"shape": [-1, 3, 4, 4]} and plan.nodes[0].output_shape == (3, 4, 4)


def test_validate_skips_the_model_check_when_its_data_cannot_be_read(tmp_path):
    path = spec_file(tmp_path, "  layers: [Flatten, {Linear: {out_features: \"${data.num_classes}\"}}]\n")
    (tmp_path / "data.npz").unlink()
    result = dtrain("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert "note: the model is not checked" in result.stderr
    # the schema still accepts references where integers go, and nothing else
    bad = path.read_text().replace('"${data.num_classes}"', "many")
    path.write_text(bad)
    result = dtrain("validate", str(path))
    assert result.returncode == 1
    assert "spec.yaml:11:45: out_features must be an integer >= 1, got 'many'" in result.stderr


# -- torchvision models ------------------------------------------------------------------------------------


def test_torchvision_model_as_a_layer_and_its_weights_from_the_hub_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    model = """\
  input: [3, 32, 32]
  layers:
    - mobilenet_v3_small: {weights: MobileNet_V3_Small_Weights.IMAGENET1K_V1}
    - Linear: {out_features: 4}
"""
    path = spec_file(tmp_path, model)
    message = spec_error(path)  # no file: a located error before any download
    assert "spec.yaml:13:37: layer 0 (mobilenet_v3_small): the weights MobileNet_V3_Small_Weights.IMAGENET1K_V1 " \
           "are not in the torch hub cache" in message
    assert "mobilenet_v3_small-047dcff4.pth" in message
    saved = torchvision.models.mobilenet_v3_small()
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(saved.state_dict(), folder / "mobilenet_v3_small-047dcff4.pth")
    spec = load_spec(path)
    plan = plan_model(spec)
    assert plan.nodes[0].output_shape == (1000,)
    assert plan.nodes[0].parameters == sum(p.numel() for p in saved.parameters())
    built = build_model(spec, plan)
    torch.testing.assert_close(built.layers[0].features[0][0].weight, saved.features[0][0].weight)
    default = spec_file(tmp_path, model.replace("MobileNet_V3_Small_Weights.IMAGENET1K_V1", "DEFAULT"))
    assert plan_model(load_spec(default)).nodes[0].parameters == plan.nodes[0].parameters
    none = plan_model(load_spec(spec_file(tmp_path, model.replace(
        "{weights: MobileNet_V3_Small_Weights.IMAGENET1K_V1}", "{num_classes: 6}"))))
    assert none.nodes[0].output_shape == (6,)


# -- located errors -----------------------------------------------------------------------------------------

UNET_HEAD = """\
  input: [3, 8, 8]
  layers:
    - Conv2d: {out_channels: 4, kernel_size: 3, padding: 1}
      name: enc1
    - MaxPool2d: {kernel_size: 2}
    - Conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
      name: enc2
"""

ERRORS = [
    ("unknown name", UNET_HEAD + "    - cat: {dim: 1}\n      input: [enc2, enc3]\n",
     "spec.yaml:19:21: layer 3 (cat) reads 'enc3', but no item before it in this list is named so — did you mean "
     "'enc2' or 'enc1'? (named so far: enc1, enc2); names are local to the layer list that defines them"),
    ("a name defined later", UNET_HEAD + "    - cat: {dim: 1}\n      input: [enc2, up]\n    - ReLU:\n      name: up\n",
     "spec.yaml:19:21: layer 3 (cat) reads 'up', which is named by a later item (layer 4): a layer can only read "
     "outputs of the items before it, so a model has no cycles"),
    ("cat of incompatible shapes", UNET_HEAD + "    - cat: {dim: 1}\n      input: [enc2, enc1]\n",
     "spec.yaml:18:7: layer 3 (cat) cannot take its inputs of shapes [N, 8, 4, 4] (enc2) and [N, 4, 8, 8] (enc1): "),
    ("residual of incompatible shapes", UNET_HEAD + "    - residual:\n        layers: [{Conv2d: {out_channels: 3, "
                                                    "kernel_size: 1}}]\n",
     "spec.yaml:18:7: layer 3 (residual) adds its layers' output [N, 3, 4, 4] to its input [N, 8, 4, 4]; they must "
     "have the same shape — add a projection"),
    ("a tuple output", UNET_HEAD + "    - Flatten: {start_dim: 2}\n    - GRU: {hidden_size: 3}\n",
     "spec.yaml:19:7: layer 4 (GRU) returns a tuple of 2 (Tensor, Tensor), not a tensor; keep one element with "
     "`output: 0` beside it"),
    ("an unknown reference", """\
  input: [3, 8, 8]
  blocks:
    Stage:
      params: {channels: null}
      layers: [{Conv2d: {out_channels: "${chanels}", kernel_size: 1}}]
  layers: [{Stage: {channels: 4}}]
""", "spec.yaml:15:40: unknown reference ${chanels} — did you mean '${channels}'? (known: ${channels}) (in block "
     "Stage, used at"),
    ("a reference to a value of the wrong type", """\
  input: [3, 8, 8]
  blocks:
    Stage:
      params: {channels: null}
      layers: [{Conv2d: {out_channels: "${channels}", kernel_size: 1}}]
  layers: [{Stage: {channels: wide}}]
""", "spec.yaml:15:40: layer 0.0 (Conv2d): out_channels is 'wide' (from '${channels}'), but it must be an integer "
     ">= 1 (in block Stage, used at"),
    ("a block named like a layer", """\
  blocks:
    ReLU: {layers: [Tanh]}
  layers: [ReLU]
""", "spec.yaml:12:5: block 'ReLU' has the name of a layer; pick another name"),
    ("a block that uses itself", """\
  input: [3, 8, 8]
  blocks:
    Loop:
      layers: [ReLU, Loop]
  layers: [Loop]
""", "spec.yaml:14:22: block Loop uses itself (Loop → Loop); blocks cannot recurse"),
]


@pytest.mark.parametrize("what,model,message", ERRORS, ids=[e[0] for e in ERRORS])
def test_graph_mistakes_are_located(what, model, message, tmp_path):
    assert message in spec_error(spec_file(tmp_path, model))


SCHEMA_ERRORS = [
    ("a block without a parameter it needs", "    - Stage\n    - Stage: {}\n",
     ["spec.yaml:18:14: Stage needs channels"]),
    ("a block with an unknown parameter", "    - Stage: {channels: 4, chanels: 5}\n",
     ["spec.yaml:17:28: Stage has no argument 'chanels' — did you mean 'channels'? (it takes: channels)"]),
    ("an unknown layer or block", "    - Stgae: {channels: 4}\n    - Relu\n",
     ["spec.yaml:17:7: unknown layer 'Stgae' — did you mean 'Stage'?", "spec.yaml:18:7: unknown layer 'Relu' — did "
                                                                      "you mean 'ReLU'?"]),
    ("two layers in one item", "    - {ReLU: null, Tanh: null}\n",
     ["spec.yaml:17:7: one item names one layer; this one names 2: ReLU, Tanh — make each its own list item"]),
]


@pytest.mark.parametrize("what,layers,messages", SCHEMA_ERRORS, ids=[e[0] for e in SCHEMA_ERRORS])
def test_block_and_item_mistakes_are_located_by_validate(what, layers, messages, tmp_path):
    path = spec_file(tmp_path, """\
  input: [3, 8, 8]
  blocks:
    Stage:
      params: {channels: null}
      layers: [{Conv2d: {out_channels: "${channels}", kernel_size: 1}}]
  layers:
""" + layers)
    result = dtrain("validate", "--schema-only", str(path))
    assert result.returncode == 1
    for message in messages:
        assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
