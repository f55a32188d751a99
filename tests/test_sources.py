"""Data sources on files in their real on-disk formats, written here (nothing downloads)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from declarative.data import build_data
from declarative.data.sources import SOURCES
from test_data import all_targets, data_error, location, make_spec


# --------------------------------------------------------------------------- CIFAR

def write_cifar(root: Path, folder: str, batches: dict[str, int], label_key: str, seed: int = 0) -> dict:
    """CIFAR python batches as published: pickled dicts of 'data' (N, 3072) uint8 rows (CHW) and labels."""
    rng = np.random.default_rng(seed)
    out = {}
    (root / folder).mkdir(parents=True)
    for name, n in batches.items():
        entry = {"batch_label": name, "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 label_key: rng.integers(0, 10, size=n).tolist(), "filenames": [f"{i}.png" for i in range(n)]}
        if label_key == "fine_labels":
            entry["coarse_labels"] = rng.integers(0, 20, size=n).tolist()
        (root / folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        out[name] = entry
    return out


CIFAR10_BATCHES = {**{f"data_batch_{i}": 4 for i in range(1, 6)}, "test_batch": 6}


def test_cifar10_reads_its_python_batches_as_nchw_uint8(tmp_path):
    written = write_cifar(tmp_path / "data", "cifar-10-batches-py", CIFAR10_BATCHES, "labels")
    (tmp_path / "data" / "cifar-10-batches-py" / "batches.meta").write_bytes(
        pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}, protocol=2))
    spec = make_spec(tmp_path, "source: {CIFAR10: {root: data}}\nbatch_size: 100", input="[3, 32, 32]")
    data = build_data(spec)
    inputs, targets = data.train.inputs, data.train.targets
    assert inputs.shape == (20, 3, 32, 32) and inputs.dtype == torch.uint8
    first = written["data_batch_1"]
    assert torch.equal(inputs[0], torch.from_numpy(first["data"][0].reshape(3, 32, 32)))
    assert targets.tolist() == sum((written[f"data_batch_{i}"]["labels"] for i in range(1, 6)), [])
    assert len(data.test.inputs) == 6 and data.test.targets.tolist() == written["test_batch"]["labels"]


def test_cifar100_targets_are_the_fine_labels(tmp_path):
    written = write_cifar(tmp_path / "data", "cifar-100-python", {"train": 5, "test": 3}, "fine_labels")
    spec = make_spec(tmp_path, "source: {CIFAR100: {root: data}}", input="[3, 32, 32]")
    data = build_data(spec)
    assert data.train.targets.tolist() == written["train"]["fine_labels"]
    assert data.test.inputs.shape == (3, 3, 32, 32)


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_cifar_batch_that_would_run_code_is_refused(tmp_path, capsys):
    write_cifar(tmp_path / "data", "cifar-10-batches-py", CIFAR10_BATCHES, "labels")
    (tmp_path / "data" / "cifar-10-batches-py" / "data_batch_3").write_bytes(
        pickle.dumps({"data": Payload(), "labels": [1]}, protocol=2))
    spec = make_spec(tmp_path, "source: {CIFAR10: {root: data}}", input="[3, 32, 32]")
    message = data_error(spec)
    assert "this must never run" not in capsys.readouterr().out
    assert message.startswith(location(spec, "data}"))
    assert "data_batch_3" in message and "print, which a data file has no need of" in message


def test_missing_cifar_files_name_the_folder_and_download(tmp_path):
    spec = make_spec(tmp_path, "source: {CIFAR10: {root: nowhere}}", input="[3, 32, 32]")
    message = data_error(spec)
    assert message.startswith(location(spec, "nowhere"))
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in message
    assert "data_batch_1" in message and "download: true" in message


# --------------------------------------------------------------------------- SVHN

def write_svhn(root: Path, splits=("train", "test"), n: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """SVHN's .mat files as published: X (H, W, C, N) uint8 and y (N, 1) with digit 0 labelled 10."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)  # N, C, H, W
    labels = np.array([[10], [1], [2], [10], [9]] * (n // 5), dtype=np.uint8)
    for split in splits:
        savemat(root / f"{split}_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": labels})
    return images, labels


def test_svhn_reads_mat_files_with_digit_zero_as_class_zero(tmp_path):
    images, _ = write_svhn(tmp_path / "svhn")
    spec = make_spec(tmp_path, "source: {SVHN: {root: svhn}}", input="[3, 32, 32]")
    data = build_data(spec)
    assert torch.equal(data.train.inputs, torch.from_numpy(images))
    assert data.train.targets.tolist() == [0, 1, 2, 0, 9]
    assert len(data.test.inputs) == 5


def test_svhn_extra_split_can_be_the_validation_split(tmp_path):
    write_svhn(tmp_path / "svhn")
    spec = make_spec(tmp_path, "source: {SVHN: {root: svhn}}\nval: {split: extra}", input="[3, 32, 32]")
    message = data_error(spec)
    assert "missing: extra_32x32.mat" in message and "download: true" in message
    write_svhn(tmp_path / "svhn", splits=["extra"], n=10, seed=1)
    assert len(build_data(spec).val.inputs) == 10


# --------------------------------------------------------------------------- STL10

def write_stl10(root: Path, n_train: int = 6, n_test: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """stl10_binary/ as published: column-major uint8 images, labels 1-10, and fold_indices.txt."""
    rng = np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)  # upright N, C, H, W
        labels = rng.integers(1, 11, size=n, dtype=np.uint8)
        images.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")
        labels.tofile(folder / f"{split}_y.bin")
        out[split], out[f"{split}_labels"] = images, labels
    (folder / "fold_indices.txt").write_text("\n".join(" ".join(map(str, [i, (i + 2) % n_train]))
                                                       for i in range(10)) + "\n")
    return out


def test_stl10_reads_its_binary_files_upright(tmp_path):
    written = write_stl10(tmp_path / "data")
    spec = make_spec(tmp_path, "source: {STL10: {root: data}}", input="[3, 96, 96]")
    data = build_data(spec)
    assert torch.equal(data.train.inputs, torch.from_numpy(written["train"]))
    assert data.train.targets.tolist() == (written["train_labels"].astype(int) - 1).tolist()
    assert torch.equal(data.test.inputs, torch.from_numpy(written["test"]))


def test_stl10_folds_pick_the_training_samples_of_that_fold(tmp_path):
    written = write_stl10(tmp_path / "data")
    spec = make_spec(tmp_path, "source: {STL10: {root: data, folds: 3}}", input="[3, 96, 96]")
    data = build_data(spec)
    assert torch.equal(data.train.inputs, torch.from_numpy(written["train"][[3, 5]]))


def test_truncated_stl10_file_is_a_located_error(tmp_path):
    write_stl10(tmp_path / "data")
    file = tmp_path / "data" / "stl10_binary" / "train_X.bin"
    file.write_bytes(file.read_bytes()[:1000])
    spec = make_spec(tmp_path, "source: {STL10: {root: data}}", input="[3, 96, 96]")
    message = data_error(spec)
    assert message.startswith(location(spec, "data}")) and "train_X.bin" in message


# --------------------------------------------------------------------------- Synthetic

@pytest.mark.parametrize("task, target_shape, dtype", [
    ("multiclass", (), torch.int64), ("binary", (1,), torch.float32), ("multilabel", (4,), torch.float32),
    ("regression", (4,), torch.float32), ("segmentation", (16, 16), torch.int64)])
def test_synthetic_targets_have_the_dtype_and_shape_of_the_task(tmp_path, task, target_shape, dtype):
    spec = make_spec(tmp_path, f"source: {{Synthetic: {{shape: [3, 16, 16], size: 50, task: {task}, "
                               f"num_classes: 4}}}}", input="[3, 16, 16]")
    data = build_data(spec)
    assert data.train.targets.shape == (50, *target_shape) and data.train.targets.dtype == dtype
    assert data.test.targets.shape == (10, *target_shape)
    if dtype == torch.int64:
        assert set(data.train.targets.unique().tolist()) == {0, 1, 2, 3}  # every class occurs


def test_synthetic_data_is_the_same_for_the_same_seed_and_differs_otherwise(tmp_path):
    def inputs(seed: int) -> torch.Tensor:
        spec = make_spec(tmp_path, f"source: {{Synthetic: {{shape: [5], size: 20, seed: {seed}}}}}", input="[5]")
        return build_data(spec).train.inputs

    assert torch.equal(inputs(1), inputs(1)) and not torch.equal(inputs(1), inputs(2))


@pytest.mark.parametrize("task, loss", [("multiclass", torch.nn.CrossEntropyLoss()),
                                        ("multilabel", torch.nn.BCEWithLogitsLoss()),
                                        ("segmentation", torch.nn.CrossEntropyLoss())])
def test_synthetic_targets_are_learnable(task, loss):
    source = SOURCES["Synthetic"].build({"shape": [2, 12, 12], "size": 400, "task": task, "num_classes": 3})
    train = source.load("train")
    torch.manual_seed(0)
    if task == "segmentation":
        model = torch.nn.Sequential(torch.nn.Conv2d(2, 16, 5, padding=2), torch.nn.ReLU(), torch.nn.Conv2d(16, 3, 1))
    else:
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(288, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        value = loss(model(train.inputs), train.targets)
        value.backward()
        optimizer.step()
        losses.append(value.item())
    assert losses[-1] < 0.6 * losses[0], losses[::10]


def test_synthetic_segmentation_needs_image_shaped_samples(tmp_path):
    spec = make_spec(tmp_path, "source: {Synthetic: {shape: [20], task: segmentation}}", input="[20]")
    assert data_error(spec).startswith(location(spec, "[20]"))
