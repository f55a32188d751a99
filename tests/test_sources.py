"""Data sources on files in their real on-disk formats, written here (nothing downloads)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from declarative.data import build_data
from declarative.data.sources import SOURCES
from test_data import data_error, location, make_spec


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


def test_cifar_download_that_fails_is_located_at_download(tmp_path, monkeypatch):
    from torchvision import datasets

    def offline(self):
        raise OSError("Name or service not known")

    monkeypatch.setattr(datasets.CIFAR10, "download", offline)
    spec = make_spec(tmp_path, "source:\n  CIFAR10:\n    root: data\n    download: true\n", input="[3, 32, 32]")
    message = data_error(spec)
    assert message.startswith(location(spec, "true")) and "could not download CIFAR10" in message
    assert "Name or service not known" in message and "data_batch_1" in message


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
    ("multiclass", (), torch.int64), ("binary", (1,), torch.int64), ("multilabel", (4,), torch.int64),
    ("regression", (4,), torch.float32), ("segmentation", (16, 16), torch.int64)])
def test_synthetic_targets_have_the_dtype_and_shape_of_the_task(tmp_path, task, target_shape, dtype):
    spec = make_spec(tmp_path, f"source: {{Synthetic: {{shape: [3, 16, 16], size: 50, task: {task}, "
                               f"num_classes: 4}}}}", input="[3, 16, 16]")
    data = build_data(spec)
    assert data.train.targets.shape == (50, *target_shape) and data.train.targets.dtype == dtype
    assert data.test.targets.shape == (10, *target_shape)
    if task in ("multiclass", "segmentation"):
        assert set(data.train.targets.unique().tolist()) == {0, 1, 2, 3}  # every class occurs
    elif task in ("binary", "multilabel"):
        assert set(data.train.targets.unique().tolist()) == {0, 1}


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
        targets = train.targets.float() if task == "multilabel" else train.targets
        value = loss(model(train.inputs), targets)
        value.backward()
        optimizer.step()
        losses.append(value.item())
    assert losses[-1] < 0.6 * losses[0], losses[::10]


def test_synthetic_segmentation_needs_image_shaped_samples(tmp_path):
    spec = make_spec(tmp_path, "source: {Synthetic: {shape: [20], task: segmentation}}", input="[20]")
    assert data_error(spec).startswith(location(spec, "[20]"))


# --------------------------------------------------------------------------- ImageFolder

def write_image_folder(root: Path, sizes: dict[str, list[tuple[int, int]]], seed: int = 0) -> dict[str, np.ndarray]:
    """PNG files root/<class>/<i>.png of the given (width, height) sizes; returns each file's RGB pixels (H, W, C)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = {}
    for label, class_sizes in sizes.items():
        (root / label).mkdir(parents=True)
        for i, (width, height) in enumerate(class_sizes):
            array = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            Image.fromarray(array).save(root / label / f"{i}.png")
            pixels[f"{label}/{i}.png"] = array
    return pixels


def test_image_folder_classes_are_the_sorted_folder_names(tmp_path):
    pixels = write_image_folder(tmp_path / "pets", {"dog": [(6, 4)] * 2, "cat": [(6, 4)] * 3, "emu": [(6, 4)]})
    spec = make_spec(tmp_path, "source: {ImageFolder: {root: pets}}", input="[3, 4, 6]")
    data = build_data(spec)
    assert data.train.targets.tolist() == [0, 0, 0, 1, 1, 2]  # cat, dog, emu
    assert torch.equal(data.train.inputs[3], torch.from_numpy(pixels["dog/0.png"]).permute(2, 0, 1))


def test_image_folder_of_mixed_sizes_names_two_files_and_suggests_a_resize(tmp_path):
    write_image_folder(tmp_path / "pets", {"cat": [(6, 4)], "dog": [(6, 4), (5, 7)]})
    spec = make_spec(tmp_path, "source: {ImageFolder: {root: pets}}", input="[3, 4, 6]")
    message = data_error(spec)
    assert message.startswith(location(spec, "pets"))
    assert "cat/0.png is 3×4×6 but dog/1.png is 3×7×5" in message and "Resize" in message


def test_a_leading_resize_makes_mixed_size_images_one_size(tmp_path):
    write_image_folder(tmp_path / "pets", {"cat": [(6, 4), (9, 9)], "dog": [(5, 7)]})
    spec = make_spec(tmp_path, "source: {ImageFolder: {root: pets}}\ntransforms:\n  - Resize: {size: [8, 8]}\n"
                               "  - ToDtype: {dtype: float32, scale: true}", input="[3, 8, 8]")
    data = build_data(spec)
    assert data.train.inputs.shape == (3, 3, 8, 8)  # one size, read and resized image by image
    batch, _ = next(iter(data.train))
    assert batch.shape == (3, 3, 8, 8) and batch.dtype == torch.float32


def test_image_folder_gives_a_lazy_per_sample_dataset_and_its_size(tmp_path):
    pixels = write_image_folder(tmp_path / "pets", {"cat": [(6, 4)] * 2, "dog": [(6, 4)]})
    source = SOURCES["ImageFolder"].build({"root": str(tmp_path / "pets")})
    dataset = source.dataset("train")
    image, target = dataset[2]
    assert torch.equal(image, torch.from_numpy(pixels["dog/0.png"]).permute(2, 0, 1)) and target.item() == 1
    assert source.nbytes("train") == 3 * 3 * 4 * 6


def test_a_broken_image_file_is_named(tmp_path):
    write_image_folder(tmp_path / "pets", {"cat": [(6, 4)], "dog": [(6, 4)]})
    (tmp_path / "pets" / "dog" / "1.png").write_bytes(b"not a png at all")
    spec = make_spec(tmp_path, "source: {ImageFolder: {root: pets}}", input="[3, 4, 6]")
    message = data_error(spec)
    assert message.startswith(location(spec, "pets")) and "dog/1.png is not an image file" in message


def test_image_folder_without_class_folders_says_what_it_reads(tmp_path):
    (tmp_path / "flat").mkdir()
    spec = make_spec(tmp_path, "source: {ImageFolder: {root: flat}}", input="[3, 4, 6]")
    assert "root/<class>/<image>" in data_error(spec)


# --------------------------------------------------------------------------- CSV

IRIS = """\
sepal_length,sepal_width,colour,species
5.1,3.5,red,setosa
4.9,3.0,blue,setosa
6.3,3.3,red,virginica
5.8,2.7,green,versicolor
"""


def csv_spec(tmp_path, text: str, source: str, input: str = "[5]"):
    (tmp_path / "table.csv").write_text(text)
    return make_spec(tmp_path, f"source: {{CSV: {{path: table.csv, {source}}}}}", input=input)


def test_csv_one_hot_encodes_word_columns_and_numbers_sorted_word_targets(tmp_path):
    spec = csv_spec(tmp_path, IRIS, "targets: species")
    data = build_data(spec)
    # sepal_length, sepal_width, then colour one-hot over blue, green, red
    assert torch.allclose(data.train.inputs[:2], torch.tensor([[5.1, 3.5, 0, 0, 1], [4.9, 3.0, 1, 0, 0]]))
    assert data.train.inputs.dtype == torch.float32
    assert data.train.targets.tolist() == [0, 0, 2, 1]  # setosa, versicolor, virginica


def test_csv_whole_number_target_is_class_indices_and_fractions_are_regression(tmp_path):
    text = "a,b,label,price\n1,2,3,0.5\n4,5,0,1.25\n"
    data = build_data(csv_spec(tmp_path, text, "targets: label, inputs: [a, b]", input="[2]"))
    assert data.train.targets.tolist() == [3, 0] and data.train.targets.dtype == torch.int64
    data = build_data(csv_spec(tmp_path, text, "targets: price, inputs: [a, b]", input="[2]"))
    assert data.train.targets.tolist() == [[0.5], [1.25]] and data.train.targets.dtype == torch.float32


def test_csv_several_target_columns_give_integer_multi_label_or_float_multi_output_targets(tmp_path):
    text = "x,cat,dog,w,h\n0.5,1,0,1.5,2\n0.25,1,1,2.5,3\n"
    data = build_data(csv_spec(tmp_path, text, "targets: [cat, dog], inputs: [x]", input="[1]"))
    assert data.train.targets.tolist() == [[1, 0], [1, 1]] and data.train.targets.dtype == torch.int64
    assert data.train.inputs.tolist() == [[0.5], [0.25]]
    data = build_data(csv_spec(tmp_path, text, "targets: [w, h], inputs: [x]", input="[1]"))
    assert data.train.targets.tolist() == [[1.5, 2.0], [2.5, 3.0]] and data.train.targets.dtype == torch.float32


def test_csv_categorical_lists_number_columns_that_hold_categories(tmp_path):
    text = "zip,size,grade\n10115,1.5,1\n80331,2.5,10\n10115,3.5,2\n"
    data = build_data(csv_spec(tmp_path, text, "targets: grade, categorical: [zip, grade]", input="[3]"))
    assert data.train.inputs.tolist() == [[1, 0, 1.5], [0, 1, 2.5], [1, 0, 3.5]]
    assert data.train.targets.tolist() == [0, 2, 1]  # grades 1, 10, 2 numbered in numeric order


def test_csv_column_that_does_not_exist_suggests_the_real_ones(tmp_path):
    spec = csv_spec(tmp_path, IRIS, "targets: specis")
    message = data_error(spec)
    assert message.startswith(location(spec, "specis"))
    assert "table.csv has no column 'specis' — did you mean 'species'?" in message
    assert "(its columns: sepal_length, sepal_width, colour, species)" in message


def test_csv_value_that_is_not_a_number_names_its_line_and_column(tmp_path):
    spec = csv_spec(tmp_path, IRIS.replace("6.3,3.3", "6.3,3.e"), "targets: species")
    message = data_error(spec)
    assert message.startswith(location(spec, "table.csv"))
    assert "table.csv:4: column 'sepal_width' has '3.e', not a number" in message


@pytest.mark.parametrize("text, expected", [
    (IRIS.replace("4.9,3.0,blue,setosa", "4.9,3.0,blue"), "table.csv:3: 3 fields, but the header has 4 columns"),
    ("", "table.csv is empty"),
    ("a,b\n", "table.csv has a header but no rows"),
    ("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "table.csv is not a CSV file"),
])
def test_broken_csv_is_a_located_error(tmp_path, text, expected):
    spec = csv_spec(tmp_path, text, "targets: species")
    message = data_error(spec)
    assert message.startswith(location(spec, "table.csv")) and expected in message, message


# --------------------------------------------------------------------------- .npy

def test_array_file_reads_an_inputs_npy_and_its_targets_npy(tmp_path):
    inputs = np.arange(2 * 64, dtype=np.float32).reshape(2, 1, 8, 8)
    np.save(tmp_path / "x.npy", inputs)
    np.save(tmp_path / "labels.npy", np.array([3, 1]))
    data = build_data(make_spec(tmp_path, "source: {ArrayFile: {path: x.npy, targets: labels.npy}}"))
    assert torch.equal(data.train.inputs, torch.from_numpy(inputs)) and data.train.targets.tolist() == [3, 1]


def test_npy_targets_that_are_missing_or_pickled_are_located_errors(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), dtype=np.float32))
    spec = make_spec(tmp_path, "source: {ArrayFile: {path: x.npy}}")
    message = data_error(spec)
    assert message.startswith(location(spec, "{path: x.npy}")) and f"no such file: {tmp_path / 'targets.npy'}" in message
    np.save(tmp_path / "labels.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    spec = make_spec(tmp_path, "source: {ArrayFile: {path: x.npy, targets: labels}}", seed=1)
    message = data_error(spec)
    assert message.startswith(location(spec, "labels}")) and "labels.npy holds Python objects" in message and "allow_pickle" not in message


# --------------------------------------------------------------------------- other torchvision data sets

def test_fakedata_is_read_sample_by_sample_from_pil_images(tmp_path):
    from torchvision import datasets
    from torchvision.transforms.v2 import functional as TF

    spec = make_spec(tmp_path, "source: {FakeData: {size: 6, image_size: [3, 5, 7], num_classes: 4}}",
                     input="[3, 5, 7]")
    data = build_data(spec)
    reference = datasets.FakeData(size=6, image_size=(3, 5, 7), num_classes=4)
    assert data.train.inputs.dtype == torch.uint8 and data.train.inputs.shape == (6, 3, 5, 7)
    for i in range(6):
        image, target = reference[i]
        assert torch.equal(data.train.inputs[i], TF.pil_to_tensor(image)) and data.train.targets[i] == target


def write_usps(root: Path, split: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """USPS as torchvision reads it: a bz2 LIBSVM file, labels 1-10, 256 pixel values in [-1, 1]."""
    import bz2

    rng = np.random.default_rng(seed)
    pixels = rng.uniform(-1, 1, size=(n, 256)).round(4)
    labels = rng.integers(1, 11, size=n)
    lines = [f"{label} " + " ".join(f"{j + 1}:{v}" for j, v in enumerate(row)) for label, row in zip(labels, pixels)]
    root.mkdir(parents=True, exist_ok=True)
    with bz2.open(root / ("usps.bz2" if split == "train" else "usps.t.bz2"), "wt") as f:
        f.write("\n".join(lines) + "\n")
    return ((pixels + 1) / 2 * 255).astype(np.float32).astype(np.uint8).reshape(n, 1, 16, 16), labels - 1


def test_usps_is_read_whole_from_the_arrays_torchvision_parses(tmp_path):
    images, labels = write_usps(tmp_path / "usps", "train", 7)
    write_usps(tmp_path / "usps", "test", 3, seed=1)
    spec = make_spec(tmp_path, "source: {USPS: {root: usps}}\nval: {split: test}", input="[1, 16, 16]")
    data = build_data(spec)
    assert torch.equal(data.train.inputs, torch.from_numpy(images)) and data.train.targets.tolist() == labels.tolist()
    assert len(data.val.inputs) == 3


@pytest.mark.parametrize("name", ["USPS", "Flowers102", "SEMEION"])
def test_absent_torchvision_data_names_the_root_and_download(tmp_path, name):
    spec = make_spec(tmp_path, f"source: {{{name}: {{root: empty}}}}", input="[3, 8, 8]")
    message = data_error(spec)
    assert message.startswith(location(spec, "empty"))
    assert f"{name} files not found or not readable in {tmp_path / 'empty'}" in message
    assert "set `download: true` to download them" in message


def test_torchvision_split_arguments_are_splits_not_arguments():
    assert "split" not in SOURCES["Flowers102"].params and "train" not in SOURCES["USPS"].params
    assert SOURCES["OxfordIIITPet"].build({"root": "x"}).split_names == ("train", "test")
    assert SOURCES["SEMEION"].params["download"].schema["default"] is False


def test_the_smoke_spec_learns_its_synthetic_data(tmp_path):
    import json
    import subprocess
    import sys

    spec = Path(__file__).resolve().parents[1] / "specs" / "smoke.yaml"
    result = subprocess.run([sys.executable, "-m", "declarative", "run", str(spec)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "runs" / "smoke" / "version_0" / "results.json").read_text())
    assert results["test"]["test/accuracy"] >= 0.9, results
