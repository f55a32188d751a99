"""Data: sources, transforms, splits and batches, as a user of a spec sees them.

Every test writes its own spec and data files; MNIST comes from real IDX files written by
tests/idx.py, so nothing downloads.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from declarative.data import Batches, build_data
from declarative.data.sources import SOURCES
from declarative.data.splits import resolve_splits
from declarative.data.transforms import TRANSFORMS
from declarative.errors import SpecError
from declarative.spec.config import spec_from_document
from declarative.spec.document import load_file
from idx import MNIST_FILES, mnist_arrays, write_idx, write_mnist

DIGITS = Path(__file__).resolve().parents[1] / "specs" / "data" / "digits.npz"


def make_spec(folder: Path, data: str, *, input: str = "[1, 8, 8]", seed: int = 0):
    """A spec file whose data section is `data` (YAML, unindented), loaded as a typed Spec."""
    text = f"seed: {seed}\ndata:\n{textwrap.indent(textwrap.dedent(data).strip(), '  ')}\n" \
           f"model:\n  input: {input}\n  layers: [Flatten]\nloss: CrossEntropyLoss\noptimizer: Adam\n"
    path = folder / f"spec{seed}.yaml"
    path.write_text(text)
    return spec_from_document(load_file(path))


def location(spec, needle: str, nth: int = 0) -> str:
    """`file:line:col` of the `nth` place (from 0) that `needle` is written in the spec file."""
    found = [(number, line.index(needle) + 1)
             for number, line in enumerate(Path(spec.document.file).read_text().splitlines(), start=1)
             if needle in line]
    assert len(found) > nth, f"{needle!r} is not in the spec {nth + 1} times"
    line, col = found[nth]
    return f"{spec.document.file}:{line}:{col}"


def data_error(spec, **kwargs) -> str:
    with pytest.raises(SpecError) as info:
        build_data(spec, **kwargs)
    assert len(info.value.problems) == 1
    return str(info.value)


def write_npz(path: Path, n: int = 50, shape=(1, 8, 8), seed: int = 0, **arrays) -> Path:
    rng = np.random.default_rng(seed)
    arrays = arrays or {"inputs": rng.integers(0, 256, size=(n, *shape), dtype=np.uint8),
                        "targets": rng.integers(0, 10, size=n, dtype=np.int64)}
    np.savez(path, **arrays)
    return path


def all_targets(batches: Batches) -> torch.Tensor:
    return torch.cat([y for _, y in batches])


# --------------------------------------------------------------------------- MNIST family

def test_mnist_loads_train_and_test_splits_from_idx_files(tmp_path, mnist_root):
    spec = make_spec(tmp_path, f"source: {{MNIST: {{root: {mnist_root}}}}}\nbatch_size: 64", input="[1, 28, 28]")
    data = build_data(spec)
    written = write_mnist(tmp_path / "again", 300, 100, seed=0)  # the fixture's arrays
    assert data.train.inputs.shape == (300, 1, 28, 28) and data.train.inputs.dtype == torch.uint8
    assert data.test.inputs.shape == (100, 1, 28, 28)
    assert data.val is None  # no data.val: no validation
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    for split, batches in (("train", data.train), ("test", data.test)):
        images, labels = written[split]
        # No data.test: MNIST's own test split tests. Each split is all of its files, in their order.
        assert torch.equal(batches.inputs[:, 0], torch.from_numpy(images))
        assert torch.equal(batches.targets, torch.from_numpy(labels).long())
    assert data.train.targets.dtype == torch.int64
    assert len(data.train) == 5  # 300 / 64, the last batch short


def test_mnist_root_is_relative_to_the_spec_file(tmp_path):
    write_mnist(tmp_path / "data", 20, 10, seed=1)
    spec = make_spec(tmp_path, "source: {MNIST: {root: data}}", input="[1, 28, 28]")
    assert build_data(spec).train.num_samples == 20


@pytest.mark.parametrize("name", ["FashionMNIST", "KMNIST"])
def test_mnist_look_alikes_read_their_own_folder(tmp_path, name):
    write_mnist(tmp_path, 30, 10, seed=2, folder=name)
    spec = make_spec(tmp_path, f"source: {{{name}: {{root: {tmp_path}}}}}", input="[1, 28, 28]")
    data = build_data(spec)
    assert (data.train.num_samples, data.test.num_samples) == (30, 10)


def test_emnist_reads_the_files_of_its_split(tmp_path):
    raw = tmp_path / "EMNIST" / "raw"
    for part, n in (("train", 40), ("test", 20)):
        images, labels = mnist_arrays(n, seed=n)
        write_idx(raw / f"emnist-letters-{part}-images-idx3-ubyte", images)
        write_idx(raw / f"emnist-letters-{part}-labels-idx1-ubyte", labels + 1)  # letters are 1..26
    spec = make_spec(tmp_path, f"source: {{EMNIST: {{root: {tmp_path}, split: letters}}}}", input="[1, 28, 28]")
    data = build_data(spec)
    assert data.train.inputs.shape == (40, 1, 28, 28) and data.test.num_samples == 20
    assert data.num_classes == int(max(data.train.targets.max(), data.test.targets.max())) + 1


def test_qmnist_targets_are_the_digit_column_of_its_records(tmp_path):
    raw = tmp_path / "QMNIST" / "raw"
    for part, n in (("train", 30), ("test", 10)):
        images, labels = mnist_arrays(n, seed=n)
        records = np.zeros((n, 8), dtype=np.int32)
        records[:, 0], records[:, 1] = labels, 1234  # digit, then NIST writer id etc.
        write_idx(raw / f"qmnist-{part}-images-idx3-ubyte", images)
        write_idx(raw / f"qmnist-{part}-labels-idx2-int", records)
    spec = make_spec(tmp_path, f"source: {{QMNIST: {{root: {tmp_path}}}}}", input="[1, 28, 28]")
    data = build_data(spec)
    assert data.train.targets.shape == (30,) and data.train.targets.max() <= 9


def test_missing_mnist_files_say_where_they_must_be_and_to_set_download(tmp_path):
    spec = make_spec(tmp_path, "source:\n  MNIST:\n    root: nowhere\n", input="[1, 28, 28]")
    message = data_error(spec)
    assert location(spec, "nowhere") in message
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    assert "download: true" in message and "train-images-idx3-ubyte" in message


def test_failed_download_is_located_at_download_and_says_where_to_put_the_files(tmp_path, monkeypatch):
    from torchvision import datasets

    def offline(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: Name or service not known")

    monkeypatch.setattr(datasets.KMNIST, "download", offline)
    spec = make_spec(tmp_path, "source:\n  KMNIST:\n    root: data\n    download: true\n", input="[1, 28, 28]")
    message = data_error(spec)
    assert location(spec, "true") in message and "could not download KMNIST" in message
    assert str(tmp_path / "data" / "KMNIST" / "raw") in message and "Name or service not known" in message


def test_corrupt_idx_file_is_a_located_error(tmp_path, mnist_root):
    (mnist_root / "MNIST" / "raw" / MNIST_FILES["train"][0]).write_bytes(b"\x00\x00\x08")
    spec = make_spec(tmp_path, f"source:\n  MNIST: {{root: {mnist_root}}}\n", input="[1, 28, 28]")
    message = data_error(spec)
    assert location(spec, str(mnist_root)) in message and "not valid IDX files" in message


# --------------------------------------------------------------------------- array files

def test_array_file_reads_npz_with_named_arrays(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = rng.integers(0, 4, size=40).astype(np.int32)
    write_npz(tmp_path / "table.npz", features=x, label=y)
    spec = make_spec(tmp_path, "source: {ArrayFile: {path: table.npz, inputs: features, targets: label}}",
                     input="[3]")
    data = build_data(spec)
    assert torch.equal(data.train.inputs, torch.from_numpy(x))
    assert data.train.targets.dtype == torch.int64  # class indices, as losses take them
    assert data.input_shape == (3,) and data.num_classes == int(y.max()) + 1


def test_array_file_reads_a_pt_dict_of_tensors(tmp_path):
    inputs, targets = torch.rand(30, 2, 4, 4), torch.randn(30)
    torch.save({"inputs": inputs, "targets": targets}, tmp_path / "data.pt")
    spec = make_spec(tmp_path, "source: {ArrayFile: {path: data.pt}}", input="[2, 4, 4]")
    data = build_data(spec)
    assert torch.equal(data.train.inputs, inputs) and torch.equal(data.train.targets, targets)
    assert data.num_classes is None  # float targets: regression


def test_bundled_digits_file(tmp_path):
    spec = make_spec(tmp_path, f"source: {{ArrayFile: {{path: {DIGITS}}}}}")
    data = build_data(spec)
    assert data.train.inputs.shape == (1797, 1, 8, 8) and data.train.inputs.dtype == torch.uint8
    assert int(data.train.inputs.max()) == 16 and data.num_classes == 10
    assert data.test is None and data.val is None  # one split only


def test_missing_array_file_points_at_its_path(tmp_path):
    spec = make_spec(tmp_path, "source:\n  ArrayFile:\n    path: missing.npz\n")
    message = data_error(spec)
    assert location(spec, "missing.npz") in message and "no such file" in message
    assert str(tmp_path / "missing.npz") in message


def test_array_file_without_the_named_array_lists_the_arrays_it_has(tmp_path):
    write_npz(tmp_path / "d.npz", x=np.zeros((5, 2)), y=np.zeros(5))
    spec = make_spec(tmp_path, "source:\n  ArrayFile:\n    path: d.npz\n    targets: y\n")
    message = data_error(spec)
    assert location(spec, "path: d.npz") in message  # inputs is not written: at the source's arguments
    assert "no array 'inputs'" in message and "'x', 'y'" in message


def test_named_array_the_spec_sets_is_located_at_that_argument(tmp_path):
    write_npz(tmp_path / "d.npz", x=np.zeros((5, 2)), y=np.zeros(5))
    spec = make_spec(tmp_path, "source:\n  ArrayFile:\n    path: d.npz\n    inputs: x\n    targets: labels\n")
    message = data_error(spec)
    assert location(spec, "labels") in message and "no array 'labels'" in message and "'x', 'y'" in message


@pytest.mark.parametrize("name, content, expected", [
    ("d.npz", b"not a zip archive", "not a .npz file"),
    ("d.pt", b"not a torch file", "not a file written by torch.save"),
    ("d.pt", b"hi\n", "not a file written by torch.save"),  # fails deep inside the unpickler
    ("d.csv", b"1,2\n", "reads .npz"),
])
def test_file_in_the_wrong_format_is_a_located_error(tmp_path, name, content, expected):
    (tmp_path / name).write_bytes(content)
    spec = make_spec(tmp_path, f"source:\n  ArrayFile:\n    path: {name}\n")
    message = data_error(spec)
    assert location(spec, name) in message and expected in message


class Pickled:  # a class a weights-only load must refuse to build
    pass


def test_pt_file_with_python_objects_is_refused_not_unpickled(tmp_path):
    torch.save({"inputs": torch.zeros(3, 2), "targets": torch.zeros(3), "extra": Pickled()}, tmp_path / "d.pt")
    spec = make_spec(tmp_path, "source:\n  ArrayFile:\n    path: d.pt\n", input="[2]")
    message = data_error(spec)
    assert location(spec, "d.pt") in message and "holds Python objects" in message and "weights_only=False" not in message


def test_inputs_and_targets_of_different_lengths_is_a_located_error(tmp_path):
    write_npz(tmp_path / "d.npz", inputs=np.zeros((10, 2)), targets=np.zeros(9, dtype=np.int64))
    spec = make_spec(tmp_path, "source:\n  ArrayFile:\n    path: d.npz\n", input="[2]")
    message = data_error(spec)
    assert location(spec, "d.npz") in message and "10 samples" in message and "9" in message


# --------------------------------------------------------------------------- splits

def fraction_spec(folder: Path, seed: int, data: Path = DIGITS, input: str = "[1, 8, 8]"):
    return make_spec(folder, f"source: {{ArrayFile: {{path: {data}}}}}\nval: {{fraction: 0.2}}\n"
                             f"test: {{fraction: 0.1}}", seed=seed, input=input)


def sample_ids(batches: Batches) -> set[int]:
    # The inputs of this file are a running index, so each sample names itself.
    return set(batches.inputs.flatten().tolist())


def test_fraction_splits_are_seeded_disjoint_and_cover_the_data(tmp_path):
    write_npz(tmp_path / "ids.npz", inputs=np.arange(200).reshape(200, 1), targets=np.arange(200) % 3)
    one, again, other = (build_data(fraction_spec(tmp_path, s, tmp_path / "ids.npz", input="[1]"))
                         for s in (1, 1, 2))
    assert (one.train.num_samples, one.val.num_samples, one.test.num_samples) == (140, 40, 20)
    parts = [sample_ids(one.train), sample_ids(one.val), sample_ids(one.test)]
    assert set().union(*parts) == set(range(200)) and sum(map(len, parts)) == 200  # disjoint, covering
    assert sample_ids(again.val) == parts[1] and sample_ids(again.test) == parts[2]  # same seed, same split
    assert sample_ids(other.val) != parts[1]  # another seed, another split
    assert one.val.inputs.flatten().tolist() == sorted(parts[1])  # carved splits keep the file's order


def test_fraction_that_leaves_a_split_empty_is_a_located_error(tmp_path):
    write_npz(tmp_path / "d.npz", n=10)
    spec = make_spec(tmp_path, "source: {ArrayFile: {path: d.npz}}\nval:\n  fraction: 0.01\n")
    message = data_error(spec)
    assert location(spec, "0.01") in message and "leaves val empty" in message and "10 training samples" in message

    spec = make_spec(tmp_path, "source: {ArrayFile: {path: d.npz}}\ntest: {fraction: 0.5}\nval:\n  fraction: 0.5\n",
                     seed=1)
    message = data_error(spec)
    assert location(spec, "0.5", nth=1) in message  # val's line: test, carved first, fits
    assert "leaves train empty" in message


def test_split_test_uses_the_sources_test_split(tmp_path, mnist_root):
    spec = make_spec(tmp_path, f"source: {{MNIST: {{root: {mnist_root}}}}}\nval: {{split: test}}\n"
                               f"test: {{fraction: 0.1}}", input="[1, 28, 28]")
    data = build_data(spec)
    assert data.val.num_samples == 100  # MNIST's test split validates
    assert (data.train.num_samples, data.test.num_samples) == (270, 30)  # test carved from train


def test_unknown_split_name_lists_the_sources_splits(tmp_path, mnist_root):
    spec = make_spec(tmp_path, f"source: {{MNIST: {{root: {mnist_root}}}}}\nval:\n  split: tset\n",
                     input="[1, 28, 28]")
    message = data_error(spec)
    assert location(spec, "tset") in message
    assert "no split 'tset'" in message and "did you mean 'test'" in message and "train, test" in message


def test_a_split_can_have_a_source_of_its_own(tmp_path):
    write_npz(tmp_path / "train.npz", n=30)
    write_npz(tmp_path / "val.npz", n=12, seed=1)
    spec = make_spec(tmp_path, "source: {ArrayFile: {path: train.npz}}\nval: {source: {ArrayFile: {path: val.npz}}}")
    data = build_data(spec)
    assert data.train.num_samples == 30 and data.val.num_samples == 12
    with np.load(tmp_path / "val.npz") as f:
        assert torch.equal(data.val.inputs, torch.from_numpy(f["inputs"]))


def test_split_source_with_other_sample_shape_is_a_located_error(tmp_path):
    write_npz(tmp_path / "train.npz", n=30)
    write_npz(tmp_path / "val.npz", n=12, shape=(1, 9, 9))
    spec = make_spec(tmp_path, "source: {ArrayFile: {path: train.npz}}\nval:\n  source: {ArrayFile: {path: val.npz}}")
    message = data_error(spec)
    assert location(spec, "source: {ArrayFile: {path: val") in message and "the val data" in message
    assert "[1, 9, 9]" in message and "[1, 8, 8]" in message


# --------------------------------------------------------------------------- batches

def test_training_batches_shuffle_per_epoch_and_repeat_exactly():
    inputs = torch.arange(100).view(100, 1)
    targets = torch.arange(100)

    def epoch_order(epoch: int, seed: int = 7) -> list[int]:
        batches = Batches(inputs, targets, batch_size=32, shuffle=True, seed=seed)
        batches.set_epoch(epoch)
        out = []
        for x, y in batches:
            assert torch.equal(x[:, 0], y)  # inputs and targets stay paired
            out += y.tolist()
        return out

    assert len(Batches(inputs, targets, batch_size=32)) == 4  # no drop_last
    first = epoch_order(0)
    assert sorted(first) == list(range(100)) and first != list(range(100))
    assert epoch_order(0) == first  # the same run repeats exactly
    assert epoch_order(1) != first  # a new order each epoch
    assert epoch_order(0, seed=8) != first


def test_eval_batches_keep_the_datas_order(tmp_path):
    write_npz(tmp_path / "ids.npz", inputs=np.arange(50).reshape(50, 1), targets=np.arange(50))
    spec = make_spec(tmp_path, "source: {ArrayFile: {path: ids.npz}}\nval: {fraction: 0.4}\nbatch_size: 8",
                     input="[1]")
    data = build_data(spec)
    val = all_targets(data.val).tolist()
    assert val == sorted(val) and len(val) == 20 and len(data.val) == 3
    data.val.set_epoch(3)
    assert all_targets(data.val).tolist() == val
    assert all_targets(data.train).tolist() != sorted(all_targets(data.train).tolist())  # train shuffles


# --------------------------------------------------------------------------- transforms

def test_transforms_give_the_expected_values(tmp_path, mnist_root):
    spec = make_spec(tmp_path, f"""
        source: {{MNIST: {{root: {mnist_root}}}}}
        transforms:
          - ToImage
          - ToDtype: {{dtype: float32, scale: true}}
          - Normalize: {{mean: [0.1307], std: [0.3081]}}
        batch_size: 50
        """, input="[1, 28, 28]")
    data = build_data(spec)
    x, y = next(iter(data.test))
    assert type(x) is torch.Tensor and x.dtype == torch.float32 and x.shape == (50, 1, 28, 28)
    expected = (resolve_splits(spec).test.inputs[:50].float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(x, expected)
    assert data.input_shape == (1, 28, 28)


def test_a_transform_that_fails_on_the_data_is_located_at_that_transform(tmp_path):
    spec = make_spec(tmp_path, f"""
        source: {{ArrayFile: {{path: {DIGITS}}}}}
        transforms:
          - ToImage
          - Normalize: {{mean: [0.5], std: [0.5]}}
        """)
    message = data_error(spec)
    assert location(spec, "Normalize") in message
    assert "uint8" in message and "float" in message  # torch's own reason: Normalize needs floats


def test_transform_arguments_are_checked_against_the_registry(tmp_path):
    spec = make_spec(tmp_path, f"source: {{ArrayFile: {{path: {DIGITS}}}}}\n"
                               f"transforms:\n  - ToDtpe: {{dtype: float32}}")
    message = data_error(spec)
    assert location(spec, "ToDtpe") in message and "did you mean 'ToDtype'" in message


def test_transforms_that_change_the_shape_set_the_input_shape(tmp_path):
    spec = make_spec(tmp_path, f"source: {{ArrayFile: {{path: {DIGITS}}}}}\ntransforms: [{{Resize: {{size: 16}}}}]",
                     input="[1, 16, 16]")
    data = build_data(spec)
    assert data.input_shape == (1, 16, 16) and next(iter(data.train))[0].shape == (32, 1, 16, 16)


def test_model_input_that_differs_from_the_data_names_both_shapes(tmp_path):
    spec = make_spec(tmp_path, f"source: {{ArrayFile: {{path: {DIGITS}}}}}", input="[1, 28, 28]")
    message = data_error(spec)
    assert location(spec, "[1, 28, 28]") in message
    assert "the data gives samples of shape [1, 8, 8] but model.input is [1, 28, 28]" in message


def test_transform_registry_offers_tensor_transforms_with_precise_arguments():
    assert TRANSFORMS["ToDtype"].params["dtype"].schema["enum"][:3] == ["float16", "bfloat16", "float32"]
    assert TRANSFORMS["ToDtype"].required == ["dtype"]
    assert TRANSFORMS["Resize"].params["interpolation"].schema["enum"] == ["nearest", "nearest-exact",
                                                                           "bilinear", "bicubic"]
    assert TRANSFORMS["RandomRotation"].required == ["degrees"]
    assert "inplace" not in TRANSFORMS["Normalize"].params  # would write into the stored data
    for excluded in ("ToPILImage", "PILToTensor", "Lambda", "Compose", "FiveCrop"):
        assert excluded not in TRANSFORMS
    rotate = TRANSFORMS["RandomRotation"].build({"degrees": 10, "interpolation": "bilinear"})
    assert rotate(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)).shape == (2, 1, 8, 8)


def test_source_registry_kwargs_come_from_the_signatures():
    assert SOURCES["MNIST"].required == ["root"]
    assert SOURCES["MNIST"].params["download"].schema == {"type": "boolean", "default": False}
    assert SOURCES["EMNIST"].params["split"].schema["enum"] == ["byclass", "bymerge", "balanced", "letters",
                                                                "digits", "mnist"]
    assert set(SOURCES.names()) >= {"ArrayFile", "MNIST", "FashionMNIST", "KMNIST", "QMNIST", "EMNIST"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_on_cuda_match_the_cpu_batches(tmp_path):
    spec = make_spec(tmp_path, f"""
        source: {{ArrayFile: {{path: {DIGITS}}}}}
        val: {{fraction: 0.1}}
        transforms: [ToImage, {{ToDtype: {{dtype: float32, scale: true}}}}, {{Normalize: {{mean: [0.1], std: [0.2]}}}}]
        batch_size: 100
        """)
    cpu, cuda = build_data(spec), build_data(spec, device="cuda")
    assert cuda.train.inputs.device.type == "cuda"
    for name in ("train", "val"):
        getattr(cpu, name).set_epoch(2)
        getattr(cuda, name).set_epoch(2)
        for (x, y), (xc, yc) in zip(getattr(cpu, name), getattr(cuda, name), strict=True):
            assert xc.device.type == "cuda" and torch.equal(yc.cpu(), y)  # the same order on every device
            torch.testing.assert_close(xc.cpu(), x)
