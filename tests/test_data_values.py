"""Values a model takes from its data (`input: auto`, `${data.num_classes}`), found without the data
for `dtrain validate`, and from the data a run loads, once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from rich.console import Console

from declarative.data.sources import MNIST
from declarative.run import fit_spec
from declarative.spec.validate import load_spec

ROOT = Path(__file__).resolve().parents[1]

CIFAR_SPEC = """\
name: cifar-values
data:
  source:
    CIFAR10: {{root: {root}, download: true}}
  test: {{split: test}}
  transforms:
    - ToDtype: {{dtype: float32, scale: true}}
    - Normalize: {{mean: auto, std: auto}}
  batch_size: 16
model:
  input: auto
  layers:
    - Conv2d: {{out_channels: 4, kernel_size: 3}}
    - Flatten
    - Linear: {{in_features: {in_features}, out_features: "${{data.num_classes}}"}}
loss: CrossEntropyLoss
optimizer: {{SGD: {{lr: 0.1}}}}
trainer: {{max_epochs: 1}}
"""


def dtrain(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "declarative", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


def test_validate_checks_a_cifar10_model_whose_files_are_not_here(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    good = tmp_path / "good.yaml"
    good.write_text(CIFAR_SPEC.format(root=root, in_features=4 * 30 * 30))
    bad = tmp_path / "bad.yaml"
    bad.write_text(CIFAR_SPEC.format(root=root, in_features=4 * 32 * 32))
    result = dtrain("validate", str(good), str(bad))
    assert result.returncode == 1
    # the wrong in_features is found from CIFAR-10's known 3x32x32 samples, at its line; no note, no download
    problems = result.stderr.strip().splitlines()
    assert len(problems) == 1 and problems[0].startswith(f"{bad}:15:29: in_features=4096 disagrees"), result.stderr
    assert "3600" in problems[0] and "4096" in problems[0]
    assert list(root.iterdir()) == []
    spec = load_spec(good)
    assert spec.model.input == [3, 32, 32] and spec.model.data.num_classes == 10
    assert spec.data.transforms[1].kwargs["mean"] == "auto"  # statistics are the run's to compute


def test_validate_of_the_shipped_specs_is_silent():
    result = dtrain("validate", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml")))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_validate_still_notes_a_model_whose_image_folder_is_absent(tmp_path):
    text = CIFAR_SPEC.format(root=tmp_path, in_features=1).replace("CIFAR10: {root: %s, download: true}" % tmp_path,
                                                                    "ImageFolder: {root: no_such_folder}")
    text = text.replace("  test: {split: test}\n", "")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    result = dtrain("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert f"{path}: note: the model is not checked" in result.stderr


MNIST_SPEC = """\
name: mnist-values
seed: 5
data:
  source: {{MNIST: {{root: {root}, download: true}}}}
  val: {{fraction: 0.2}}
  test: {{split: test}}
  transforms: [{{ToDtype: {{dtype: float32, scale: true}}}}]
  batch_size: 50
model:
  input: auto
  layers:
    - Flatten
    - Linear: {{out_features: "${{data.num_classes}}"}}
loss: CrossEntropyLoss
optimizer: {{SGD: {{lr: 0.1}}}}
trainer: {{max_epochs: 1, enable_progress_bar: false, default_root_dir: {runs}}}
"""


def test_a_run_with_data_values_loads_each_split_once_and_stays_seeded(tmp_path, mnist_root, monkeypatch):
    loads = []
    original = MNIST.load

    def counted(self, split):
        loads.append(split)
        return original(self, split)

    monkeypatch.setattr(MNIST, "load", counted)
    path = tmp_path / "spec.yaml"
    path.write_text(MNIST_SPEC.format(root=mnist_root, runs=tmp_path / "runs"))
    first = fit_spec(load_spec(path), console=Console(quiet=True))
    assert sorted(loads) == ["test", "train"]
    second = fit_spec(load_spec(path), console=Console(quiet=True))
    assert first.val_metrics == second.val_metrics and first.test_metrics == second.test_metrics
    weights = [torch.load(r.last_model_path, weights_only=True)["state_dict"] for r in (first, second)]
    for name, tensor in weights[0].items():
        torch.testing.assert_close(weights[1][name], tensor)


def test_fixed_format_sources_describe_themselves_without_files(tmp_path):
    from declarative.data.sources import SOURCES

    def described(name, **kwargs):
        d = SOURCES[name].build({"root": str(tmp_path / "absent"), **kwargs}).describe("train")
        return d.shape, d.dtype, d.num_classes

    mnist_like = ((1, 28, 28), torch.uint8)
    for name in ("MNIST", "FashionMNIST", "KMNIST", "QMNIST"):
        assert described(name) == (*mnist_like, 10)
    emnist = {split: described("EMNIST", split=split)[2] for split in
              ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")}
    assert emnist == {"byclass": 62, "bymerge": 47, "balanced": 47, "letters": 27, "digits": 10, "mnist": 10}
    assert described("CIFAR10") == ((3, 32, 32), torch.uint8, 10)
    assert described("CIFAR100") == ((3, 32, 32), torch.uint8, 100)
    assert described("SVHN") == ((3, 32, 32), torch.uint8, 10)
    assert described("STL10") == ((3, 96, 96), torch.uint8, 10)
    assert not list(tmp_path.iterdir())


def test_emnist_letters_targets_run_1_to_26_as_its_description_says(tmp_path):
    from idx import write_idx

    from declarative.data import build_data
    from declarative.data.info import data_info

    raw = tmp_path / "EMNIST" / "raw"
    rng = torch.Generator().manual_seed(0)
    for part, n in (("train", 52), ("test", 26)):
        labels = (torch.arange(n) % 26 + 1).to(torch.uint8).numpy()  # the letters set's targets: 1..26
        write_idx(raw / f"emnist-letters-{part}-images-idx3-ubyte",
                  torch.randint(0, 256, (n, 28, 28), generator=rng, dtype=torch.uint8).numpy())
        write_idx(raw / f"emnist-letters-{part}-labels-idx1-ubyte", labels)
    path = tmp_path / "spec.yaml"
    path.write_text(MNIST_SPEC.format(root=tmp_path, runs=tmp_path / "runs").replace(
        "MNIST: {root:", "EMNIST: {split: letters, root:"))
    spec = load_spec(path)
    assert spec.model.data.num_classes == 27  # described
    assert data_info(spec).num_classes == 27  # read from the labels file
    assert build_data(spec).num_classes == 27  # what the run finds


def test_validate_reads_the_class_count_of_data_that_is_here(tmp_path):
    from idx import write_idx

    from declarative.spec.document import load_file
    from declarative.spec.config import spec_from_document
    from declarative.spec.validate import semantic_problems

    raw = tmp_path / "MNIST" / "raw"
    for prefix in ("train", "t10k"):  # a subset with five classes
        write_idx(raw / f"{prefix}-images-idx3-ubyte", torch.zeros((20, 28, 28), dtype=torch.uint8).numpy())
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", (torch.arange(20) % 5).to(torch.uint8).numpy())
    path = tmp_path / "spec.yaml"
    path.write_text(MNIST_SPEC.format(root=tmp_path, runs=tmp_path / "runs"))
    spec = spec_from_document(load_file(path))
    assert semantic_problems(spec, read_data=True) == []
    assert spec.model.data.num_classes == 5 and spec.model.input == [1, 28, 28]
    assert load_spec(path).model.data.num_classes == 10  # the description alone: MNIST's ten digits


def test_validate_reports_a_wrong_split_name_of_data_that_is_not_here(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    path = tmp_path / "spec.yaml"
    path.write_text(CIFAR_SPEC.format(root=root, in_features=3600).replace("test: {split: test}", "test: {split: tset}"))
    result = dtrain("validate", str(path))
    assert result.returncode == 1
    assert f"{path}:5:" in result.stderr and "CIFAR10 has no split 'tset'" in result.stderr
    assert "note:" not in result.stderr


def test_image_folder_values_come_from_its_folders_and_first_image(tmp_path):
    from PIL import Image

    from declarative.data.info import data_info

    for i, name in enumerate(("cat", "dog", "eel")):
        (tmp_path / "pets" / name).mkdir(parents=True)
        Image.new("RGB", (10 + i, 6)).save(tmp_path / "pets" / name / "a.png")
    text = CIFAR_SPEC.format(root="x", in_features=1).replace("CIFAR10: {root: x, download: true}",
                                                              "ImageFolder: {root: pets}")
    text = text.replace("  test: {split: test}\n", "").replace(
        "    - ToDtype", "    - Resize: {size: [8, 8]}\n    - ToDtype")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    spec = load_spec(path, semantic=False)
    info = data_info(spec)
    assert (info.input_shape, info.num_classes) == ((3, 8, 8), 3)
    assert data_info(spec, read=False) is None  # no description: the folder must be read


def test_num_classes_of_multi_label_targets_is_the_number_of_labels(tmp_path):
    """0/1 targets (N, L) are L labels, so `${data.num_classes}` gives one logit per label, not max + 1 = 2."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, 6, generator=generator)
    targets = (torch.randn(64, 5, generator=generator) > 0).long()
    torch.save({"inputs": inputs, "targets": targets}, tmp_path / "labels.pt")
    (tmp_path / "spec.yaml").write_text(
        "data:\n  source: {ArrayFile: {path: labels.pt}}\n  val: {fraction: 0.25}\n"
        "model:\n  layers:\n    - Linear: {out_features: 16}\n    - ReLU\n"
        "    - Linear: {out_features: \"${data.num_classes}\"}\n"
        "optimizer: {Adam: {lr: 0.01}}\n"
        f"trainer: {{max_epochs: 1, default_root_dir: {tmp_path / 'runs'}, enable_progress_bar: false}}\n")
    result = dtrain("summary", str(tmp_path / "spec.yaml"))
    assert result.returncode == 0, result.stderr
    assert "[N, 5]" in result.stdout
    fit = fit_spec(load_spec(tmp_path / "spec.yaml"), console=Console(file=open(os.devnull, "w")))
    assert 0.0 <= fit.val_metrics["val/f1"] <= 1.0  # the multilabel task's default metrics ran on 5 logits
    recorded = (Path(fit.run_dir) / "spec.yaml").read_text()
    assert "task: multilabel" in recorded and "# ${data.num_classes} = 5" in recorded
