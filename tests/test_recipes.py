"""Training recipes in a spec: parameter groups, freezing, new heads, scheduler chains, weight averaging,
MixUp/CutMix, initializers, channels_last; and the two recipe specs, trained a few steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from declarative.errors import SpecError
from declarative.model.builder import build_model
from declarative.spec.validate import load_spec
from declarative.assembly.param_groups import param_groups
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


def write(tmp_path: Path, extra: str = "", changes: dict[str, str] | None = None) -> Path:
    """The small conv spec with `extra` appended and `changes` replacing text in it, on test-written data."""
    data = tmp_path / "data.npz"
    if not data.exists():
        write_arrays(data, n=64, shape=(3, 8, 8), classes=4)
    text = SPEC.format(data=data) + extra
    for old, new in (changes or {}).items():
        text = text.replace(old, new)
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

    return load_checkpoint(result.last_model_path or result.best_model_path)


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


# -- scheduler chains ------------------------------------------------------------------------------------------

WARMUP = """\
optimizer:
  SGD: {lr: 0.1, weight_decay: 0.01}
  param_groups:
    - params: {bias: true}
      weight_decay: 0
scheduler:
  SequentialLR:
    schedulers:
      - LinearLR: {start_factor: 0.1, total_iters: 4}
      - CosineAnnealingLR
  interval: step
callbacks: [LearningRateMonitor]
"""


def test_warm_up_chain_gives_torchs_sequential_lr_rates_per_step(tmp_path):
    import csv

    from torch.optim import lr_scheduler

    path = write(tmp_path, WARMUP, {"logger: false": "logger: [CSVLogger]",
                                    "max_steps: 3": "max_steps: 12, log_every_n_steps: 1"})
    result = fit(path)
    with open(result.run_dir / "metrics.csv") as file:
        rows = [r for r in csv.DictReader(file) if r.get("lr-SGD/pg1")]
    logged = [float(r["lr-SGD/pg1"]) for r in rows]
    assert [float(r["lr-SGD/pg2"]) for r in rows] == logged  # both groups follow the chain
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    warm = lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=4)
    cosine = lr_scheduler.CosineAnnealingLR(optimizer, T_max=12 - 4)  # T_max: the rest of the run
    chain = lr_scheduler.SequentialLR(optimizer, [warm, cosine], milestones=[4])
    expected = []
    for _ in range(12):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        chain.step()
    assert logged == pytest.approx(expected, rel=1e-12)
    assert logged[0] == pytest.approx(0.01) and min(logged) < logged[4]


@pytest.mark.parametrize("scheduler, message", [
    ("{SequentialLR: {schedulers: [CosineAnnealingLR, LinearLR]}}",
     "the milestones cannot be inferred: CosineAnnealingLR has no length of its own"),
    ("{SequentialLR: {schedulers: [LinearLR, StepLR: {step_size: 2}], milestones: [2, 3]}}".replace(
        "StepLR: {step_size: 2}", "{StepLR: {step_size: 2}}"), "2 schedulers take 1 increasing milestone(s), got [2, 3]"),
    ("{ChainedScheduler: {schedulers: [{StepLR: {step_size: 0}}]}}", "step_size must be"),
    ("{LambdaLR: {}}", "LR scheduler 'LambdaLR' is left out on purpose: takes a Python function (lr_lambda)"),
])
def test_scheduler_chain_mistakes_are_located(tmp_path, scheduler, message):
    from declarative.run import build_scheduler

    path = write(tmp_path, f"optimizer: {{SGD: {{lr: 0.1}}}}\nscheduler: {scheduler}\n")
    text = error_of(path, lambda spec: build_scheduler(spec, torch.optim.SGD(build_model(spec).parameters()), 4))
    assert "spec.yaml:" in text and message in text, text


# -- freezing and unfreezing ----------------------------------------------------------------------------------

FROZEN = {"      name: stem\n": "      name: stem\n      trainable: false\n",
          "    - BatchNorm2d\n": "    - BatchNorm2d: null\n      trainable: false\n      train_bn: false\n"}


def test_frozen_layers_are_bit_identical_after_training_and_the_rest_trains(tmp_path):
    path = write(tmp_path, "optimizer: {SGD: {lr: 0.5, momentum: 0.9}}\n", FROZEN)
    spec = load_spec(path, [f"trainer.default_root_dir={tmp_path / 'runs'}"])
    with torch.random.fork_rng():
        torch.manual_seed(spec.seed)
        before = build_model(spec).state_dict()
    from declarative.run import fit_spec

    after = saved(fit_spec(spec))["state_dict"]
    for name in ("layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "layers.1.running_mean",
                 "layers.1.running_var", "layers.1.num_batches_tracked"):
        assert torch.equal(before[name], after[name]), name
    assert not torch.equal(before["layers.4.weight"], after["layers.4.weight"])
    from declarative.model.builder import plan_model

    assert plan_model(spec).trainable == 4 * 256 + 4  # the summary counts the head alone


def test_backbone_finetuning_unfreezes_at_its_epoch_with_its_own_learning_rate(tmp_path):
    path = write(tmp_path, """\
optimizer: {SGD: {lr: 0.2}}
callbacks:
  - BackboneFinetuning: {unfreeze_backbone_at_epoch: 1, backbone_initial_ratio_lr: 0.1}
""", {**FROZEN, "max_steps: 3": "max_epochs: 3"})
    spec = load_spec(path, [f"trainer.default_root_dir={tmp_path / 'runs'}"])
    with torch.random.fork_rng():
        torch.manual_seed(spec.seed)
        before = build_model(spec).state_dict()
    from declarative.run import fit_spec

    contents = saved(fit_spec(spec))
    groups = contents["optimizer_states"][0]["param_groups"]
    # the head at 0.2; the backbone from epoch 1 at 0.02, doubled at epoch 2 (Lightning's default)
    assert [g["lr"] for g in groups] == [0.2, pytest.approx(0.04)]
    assert len(groups[1]["params"]) == 4
    after = contents["state_dict"]
    assert not torch.equal(before["layers.0.weight"], after["layers.0.weight"])
    assert not torch.equal(before["layers.1.running_mean"], after["layers.1.running_mean"])  # train_bn: true


# -- initializers -----------------------------------------------------------------------------------------------


def test_initializers_by_layer_type_and_by_item_run_seeded(tmp_path):
    path = write(tmp_path, "optimizer: {SGD: {lr: 0.1}}\n", {"  layers:\n": """\
  init:
    Conv2d: {weight: {constant_: {val: 0.5}}, bias: zeros_}
    Linear: {weight: xavier_uniform_, bias: {normal_: {std: 0.01}}}
  layers:
""", "    - Linear: {out_features: 4}\n": "    - Linear: {out_features: 4}\n      init: {bias: ones_}\n"})
    spec = load_spec(path)
    first, second = build_model(spec), build_model(spec)  # build_model runs under the run's seed in a run
    conv, linear = first.layers[0], first.layers[4]
    assert torch.equal(conv.weight, torch.full_like(conv.weight, 0.5)) and not conv.bias.any()
    bound = (6 / (256 + 4)) ** 0.5
    assert linear.weight.abs().max() <= bound and linear.weight.std() > bound / 4
    assert torch.equal(linear.bias, torch.ones(4))  # the item's own initializer runs last
    torch.manual_seed(1)
    a = build_model(spec).layers[4].weight
    torch.manual_seed(1)
    assert torch.equal(a, build_model(spec).layers[4].weight)
    assert not torch.equal(a, second.layers[4].weight)


@pytest.mark.parametrize("init, message", [
    ("  init: {Conv1d: {weight: zeros_}}\n", "no layer of type 'Conv1d' is in the model — did you mean 'Conv2d'?"),
    ("  init: {ReLU: {weight: zeros_}}\n", "no ReLU of the model has a parameter 'weight'"),
    ("  init: {BatchNorm2d: {weight: xavier_uniform_}}\n", "cannot initialise layers.1.weight of shape [4]"),
    ("  init: {Linear: {weight: {constant_: {}}}}\n", "constant_ needs val"),
])
def test_initializer_mistakes_are_located(tmp_path, init, message):
    path = write(tmp_path, "optimizer: {SGD: {lr: 0.1}}\n", {"  layers:\n": init + "  layers:\n"})
    text = error_of(path, build_model)
    assert "spec.yaml:10:" in text and message in text, text


# -- weight averaging ---------------------------------------------------------------------------------------------


def test_ema_weights_equal_a_hand_computed_ema_over_three_steps_and_are_what_is_saved(tmp_path):
    optimizer = "optimizer: {SGD: {lr: 0.5, momentum: 0.9}}\n"
    trained = []
    for steps in (1, 2, 3):  # the same seed: the same trajectory, which EMA only watches
        folder = tmp_path / f"plain{steps}"
        folder.mkdir()
        trained.append(saved(fit(write(folder, optimizer), f"trainer.max_steps={steps}"))["state_dict"])
    path = write(tmp_path, optimizer + "callbacks: [{EMAWeightAveraging: {decay: 0.75}}]\n")
    contents = saved(fit(path))
    for name in ("layers.0.weight", "layers.1.bias", "layers.4.weight"):
        p1, p2, p3 = (t[name] for t in trained)
        ema = 0.75 * (0.75 * p1 + 0.25 * p2) + 0.25 * p3  # the first update copies the weights
        torch.testing.assert_close(contents["state_dict"][name], ema, rtol=1e-5, atol=1e-6)
        current = contents["callbacks"]["EMAWeightAveraging"]["current_model_state"][name]
        torch.testing.assert_close(current, p3, rtol=1e-5, atol=1e-6)  # the trained weights are kept too


def test_stochastic_weight_averaging_averages_from_its_epoch_with_swalr(tmp_path):
    path = write(tmp_path, """\
optimizer: {SGD: {lr: 0.5}}
scheduler: {StepLR: {step_size: 1, gamma: 0.5}}
callbacks: [{StochasticWeightAveraging: {swa_lrs: 0.05, swa_epoch_start: 2, annealing_epochs: 1}}]
""", {"max_steps: 3": "max_epochs: 4"})
    result = fit(path)
    contents = saved(result)
    assert contents["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.05)
    state = contents["callbacks"]["StochasticWeightAveraging"]
    # last.ckpt is written at the end of epoch 3, after every epoch-end hook: epochs 2 and 3 are averaged by then
    assert state["n_averaged"] == 2
    assert not torch.equal(state["current_model_state"]["layers.4.weight"], contents["state_dict"]["layers.4.weight"])
    assert result.val_metrics["val/loss"] > 0


# -- MixUp and CutMix ----------------------------------------------------------------------------------------------


def test_mixup_and_cutmix_give_training_batches_soft_targets_that_sum_to_one(tmp_path):
    from declarative.data import build_data

    path = write(tmp_path, "optimizer: {SGD: {lr: 0.1}}\n", {"  batch_size: 16\n": """\
  batch_size: 16
  batch_transforms:
    - RandomChoice: {transforms: [{MixUp: {alpha: 0.4}}, {CutMix: {alpha: 1.0}}]}
"""})
    spec = load_spec(path)
    data = build_data(spec)
    for inputs, targets in data.train:
        assert targets.shape == (len(inputs), 4) and targets.dtype == torch.float32
        torch.testing.assert_close(targets.sum(dim=1), torch.ones(len(inputs)))
        assert (targets.max(dim=1).values < 1).any()  # mixed: some sample takes two classes
    inputs, targets = next(iter(data.val))
    assert targets.dtype == torch.int64  # validation stays as it is
    result = fit(path)  # CrossEntropyLoss takes the probabilities; accuracy scores the argmax
    assert result.global_step == 3 and 0 <= result.val_metrics["val/accuracy"] <= 1


@pytest.mark.parametrize("where, text, message", [
    ("data", "    - MixUp: {alpha: 0.2}\n", "transform 'MixUp' is left out on purpose: it mixes the targets too: list it "
                                              "under data.batch_transforms"),
    ("loss", "", "MSELoss does not take the class probabilities that MixUp makes"),
])
def test_mixing_mistakes_say_why(tmp_path, where, text, message):
    from declarative.data import build_data

    if where == "data":
        path = write(tmp_path, "optimizer: {SGD: {lr: 0.1}}\n",
                     {"  transforms: [{ToDtype: {dtype: float32}}]\n": "  transforms:\n" + text})
    else:
        path = write(tmp_path, "optimizer: {SGD: {lr: 0.1}}\n", {
            "loss: CrossEntropyLoss": "loss: MSELoss",
            "  batch_size: 16\n": "  batch_size: 16\n  batch_transforms: [{MixUp: {alpha: 0.2}}]\n"})
    text = error_of(path, build_data)
    assert "spec.yaml:" in text and message in text, text


# -- the recipe specs ----------------------------------------------------------------------------------------------

QUICK = ["trainer.max_epochs=2", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
         "trainer.limit_test_batches=1", "trainer.num_sanity_val_steps=0", "trainer.enable_progress_bar=false",
         "trainer.precision=32-true", "trainer.accelerator=cpu", "data.batch_size=8"]


def test_resnet_recipe_spec_trains_with_every_part_of_the_recipe(tmp_path):
    data = write_arrays(tmp_path / "cifar.npz", n=64, shape=(3, 32, 32), classes=10)
    spec = load_spec(ROOT / "specs" / "resnet_recipe.yaml", [
        f"data.source={{ArrayFile: {{path: {data}}}}}", "data.test={fraction: 0.25}", *QUICK, "trainer.max_epochs=1",
        "scheduler.SequentialLR.schedulers.0.LinearLR.total_iters=1", f"trainer.default_root_dir={tmp_path}"])
    from declarative.run import fit_spec

    result = fit_spec(spec)
    contents = saved(result)
    groups = contents["optimizer_states"][0]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [2e-5, 0] and len(groups[1]["params"]) == 2 * 20  # 20 BatchNorm2d
    assert result.global_step == 2 and "test/accuracy" in result.test_metrics
    ema = contents["callbacks"]["EMAWeightAveraging"]["current_model_state"]
    assert not torch.equal(ema["layers.0.fc.weight"], contents["state_dict"]["layers.0.fc.weight"])
    conv = contents["state_dict"]["layers.0.conv1.weight"]
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()  # channels_last


@pytest.fixture
def hub_resnet18(tmp_path, monkeypatch):
    """resnet18's IMAGENET1K_V1 file in a temporary torch hub cache, holding weights the test made."""
    import torchvision

    from declarative.model.pretrained import resolve_weights, weights_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing downloads
    pretrained = torchvision.models.resnet18()
    file = Path(weights_file(resolve_weights("resnet18", "IMAGENET1K_V1")))
    file.parent.mkdir(parents=True)
    torch.save(pretrained.state_dict(), file)
    return pretrained


def test_num_classes_beside_pretrained_weights_gives_a_new_head(tmp_path, hub_resnet18):
    spec = load_spec(write(tmp_path, "optimizer: {SGD: {lr: 0.1}}\n"), ["model.layers=[{resnet18: {weights: IMAGENET1K_V1, num_classes: 3}}]",
                            "model.input=[3,32,32]"])
    model = build_model(spec).layers[0]
    assert (model.fc.in_features, model.fc.out_features) == (512, 3)
    torch.testing.assert_close(model.layer4[1].conv2.weight, hub_resnet18.layer4[1].conv2.weight)


def test_validate_finds_param_group_and_initializer_mistakes_before_any_run(tmp_path):
    import subprocess
    import sys

    files = []
    for name, init in (("init", "{Linear: {bais: zeros_}}"), ("groups", "{Linear: {bias: zeros_}}")):
        folder = tmp_path / name
        folder.mkdir()
        files.append(str(write(folder, """\
optimizer:
  SGD: {lr: 0.1}
  param_groups:
    - params: {type: LayerNorm}
      weight_decay: 0
""", {"  layers:\n": f"  init: {init}\n  layers:\n"})))
    result = subprocess.run([sys.executable, "-m", "declarative", "validate", *files], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "init/spec.yaml:10:19: no Linear of the model has a parameter 'bais' — did you mean 'bias'?" \
           in result.stderr, result.stderr
    assert "groups/spec.yaml:24:22: no layer of type 'LayerNorm' with parameters is in the model" in result.stderr


def test_finetune_spec_trains_a_new_head_on_hub_weights_then_the_backbone_at_its_own_rate(tmp_path, hub_resnet18):
    pretrained = hub_resnet18
    data = write_arrays(tmp_path / "pets.npz", n=40, shape=(3, 32, 32), classes=2)
    spec = load_spec(ROOT / "specs" / "finetune.yaml", [
        f"data.source={{ArrayFile: {{path: {data}}}}}", "data.train_transforms=[RandomHorizontalFlip]",
        "model.input=[3,32,32]", "model.layers.0.resnet18.weights=IMAGENET1K_V1",
        "callbacks.0.BackboneFinetuning.unfreeze_backbone_at_epoch=1", "callbacks.1.ModelCheckpoint.save_last=true",
        *QUICK, f"trainer.default_root_dir={tmp_path}"])
    model = build_model(spec)
    assert model.layers[0].fc.__class__.__name__ == "Identity"  # head: null
    torch.testing.assert_close(model.layers[0].conv1.weight, pretrained.conv1.weight)
    from declarative.run import fit_spec

    contents = saved(fit_spec(spec))
    groups = contents["optimizer_states"][0]["param_groups"]
    assert [g["lr"] for g in groups] == [0.001, pytest.approx(0.0001)]  # the head, then the backbone from epoch 1
    state = contents["state_dict"]
    assert not torch.equal(state["layers.0.conv1.weight"], pretrained.conv1.weight)  # trained since epoch 1
    assert torch.equal(state["layers.0.bn1.running_mean"], pretrained.bn1.running_mean)  # train_bn: false


def test_frozen_parameters_stay_bit_identical_in_the_finetune_spec_before_unfreezing(tmp_path):
    data = write_arrays(tmp_path / "pets.npz", n=40, shape=(3, 32, 32), classes=2)
    spec = load_spec(ROOT / "specs" / "finetune.yaml", [
        f"data.source={{ArrayFile: {{path: {data}}}}}", "data.train_transforms=[RandomHorizontalFlip]",
        "model.input=[3,32,32]", *QUICK, f"trainer.default_root_dir={tmp_path}"])
    with torch.random.fork_rng():
        torch.manual_seed(spec.seed)
        before = build_model(spec).state_dict()
    from declarative.run import fit_spec

    after = saved(fit_spec(spec))["state_dict"]
    backbone = [k for k in before if k.startswith("layers.0.")]
    assert len(backbone) > 100 and all(torch.equal(before[k], after[k]) for k in backbone)
    assert not torch.equal(before["layers.1.weight"], after["layers.1.weight"])


def test_channels_last_converts_the_model_and_image_batches_only_when_asked():
    from declarative.training.memory_format import with_memory_format
    from declarative.training.precision import FullPrecision

    plain = FullPrecision()
    assert with_memory_format(plain, False) is plain
    precision = with_memory_format(plain, True)
    conv = precision.convert_module(torch.nn.Conv2d(3, 8, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    inputs, targets = precision.convert_input((torch.rand(2, 3, 4, 4), torch.tensor([0, 1])))
    assert inputs.is_contiguous(memory_format=torch.channels_last) and torch.equal(targets, torch.tensor([0, 1]))
    flat, _ = precision.convert_input((torch.rand(2, 5), torch.tensor([0, 1])))
    assert flat.is_contiguous()


def test_chained_scheduler_multiplies_its_schedulers_as_torchs_does(tmp_path):
    from torch.optim import lr_scheduler

    from declarative.run import build_scheduler

    path = write(tmp_path, "optimizer: {SGD: {lr: 0.1}}\nscheduler: {ChainedScheduler: {schedulers: "
                           "[{ConstantLR: {factor: 0.5, total_iters: 2}}, {ExponentialLR: {gamma: 0.9}}]}}\n")
    spec = load_spec(path)
    ours = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    chain = build_scheduler(spec, ours, 4)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    expected = lr_scheduler.ChainedScheduler([lr_scheduler.ConstantLR(theirs, factor=0.5, total_iters=2),
                                              lr_scheduler.ExponentialLR(theirs, gamma=0.9)])
    for _ in range(5):
        assert ours.param_groups[0]["lr"] == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-12)
        ours.step(), chain.step(), theirs.step(), expected.step()
