"""Augmentation per sample, train-only transforms, normalization statistics, stratified splits,
and the in-memory and DataLoader paths, on real .npz and MNIST IDX files."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as F

from declarative.data import build_data
from declarative.data.sources import ArrayFile
from declarative.data.splits import resolve_splits
from declarative.errors import SpecError
from declarative.spec.config import spec_from_document
from declarative.spec.document import load_file
from declarative.spec.validate import load_spec
from idx import write_mnist

ROOT = Path(__file__).resolve().parents[1]


def make_spec(folder: Path, data: str, *, input: str = "[1, 8, 8]", seed: int = 0, name: str = "spec"):
    text = f"seed: {seed}\ndata:\n{textwrap.indent(textwrap.dedent(data).strip(), '  ')}\n" \
           f"model:\n  input: {input}\n  layers: [Flatten]\nloss: CrossEntropyLoss\noptimizer: Adam\n"
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return spec_from_document(load_file(path))


def spec_error(spec) -> str:
    with pytest.raises(SpecError) as info:
        build_data(spec)
    return str(info.value)


def write_npz(path: Path, inputs: np.ndarray, targets: np.ndarray) -> Path:
    np.savez(path, inputs=inputs, targets=targets)
    return path


def same_images(folder: Path, n: int = 64) -> Path:
    """`n` copies of one 1×8×8 image with no symmetry, so every crop and flip of it differs."""
    image = (np.arange(64, dtype=np.uint8) * 3 + 1).reshape(1, 1, 8, 8)
    return write_npz(folder / "same.npz", np.repeat(image, n, axis=0), np.zeros(n, dtype=np.int64))


def batches_of(batches, epoch: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    batches.set_epoch(epoch)
    return list(batches)


def possible_crops(image: torch.Tensor, size: int, padding: int, mode: str) -> list[torch.Tensor]:
    """Every crop torchvision's RandomCrop can cut from `image`: pad, then crop at each offset."""
    padded = F.pad(image, [padding], padding_mode=mode)
    span = padded.shape[-1] - size + 1
    return [F.crop(padded, top, left, size, size) for top in range(span) for left in range(span)]


# --------------------------------------------------------------------------- per-sample augmentation

@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_random_crop_gives_each_sample_its_own_crop_of_the_padded_image(tmp_path, mode):
    same_images(tmp_path)
    spec = make_spec(tmp_path, f"""
        source: {{ArrayFile: {{path: same.npz}}}}
        train_transforms: [{{RandomCrop: {{size: 8, padding: 2, padding_mode: {mode}}}}}]
        batch_size: 64
        """)
    (x, _), = batches_of(build_data(spec).train)
    crops = possible_crops(torch.as_tensor(np.load(tmp_path / "same.npz")["inputs"][0]), 8, 2, mode)
    seen = set()
    for sample in x:  # each output is one of v2's crops: the vectorised crop pads as torchvision does
        matches = [i for i, crop in enumerate(crops) if torch.equal(sample, crop)]
        assert matches, "a crop that torchvision's RandomCrop cannot give"
        seen.add(matches[0])
    assert len(seen) > 10  # 64 identical samples, 25 possible offsets: each sample drew its own


def test_random_horizontal_flip_flips_each_sample_on_its_own(tmp_path):
    same_images(tmp_path)
    spec = make_spec(tmp_path, """
        source: {ArrayFile: {path: same.npz}}
        train_transforms: [RandomHorizontalFlip]
        batch_size: 64
        """)
    (x, _), = batches_of(build_data(spec).train)
    image = x.new_tensor(np.load(tmp_path / "same.npz")["inputs"][0])
    flipped = [bool(torch.equal(s, image.flip(-1))) for s in x]
    assert all(f or torch.equal(s, image) for f, s in zip(flipped, x))
    assert 10 < sum(flipped) < 54  # p=0.5 per sample, not one coin for the whole batch


def test_other_random_transforms_run_per_sample_and_are_seeded(tmp_path):
    same_images(tmp_path)
    data = """
        source: {ArrayFile: {path: same.npz}}
        train_transforms: [{RandomRotation: {degrees: 45}}]
        batch_size: 64
        """
    (x, _), = batches_of(build_data(make_spec(tmp_path, data)).train)
    assert len({tuple(s.flatten().tolist()) for s in x}) > 32  # one angle per sample
    (again, _), = batches_of(build_data(make_spec(tmp_path, data)).train)
    assert torch.equal(x, again)  # same seed, same augmentation
    (next_epoch, _), = batches_of(build_data(make_spec(tmp_path, data)).train, epoch=1)
    assert not torch.equal(x, next_epoch)
    (other_seed, _), = batches_of(build_data(make_spec(tmp_path, data, seed=1)).train)
    assert not torch.equal(x, other_seed)


def test_augmentation_is_seeded_and_new_each_epoch(tmp_path):
    same_images(tmp_path)
    data = """
        source: {ArrayFile: {path: same.npz}}
        train_transforms: [{RandomCrop: {size: 8, padding: 2}}, RandomHorizontalFlip]
        batch_size: 16
        """
    first = batches_of(build_data(make_spec(tmp_path, data)).train)
    second = batches_of(build_data(make_spec(tmp_path, data)).train)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, second, strict=True))
    later = batches_of(build_data(make_spec(tmp_path, data)).train, epoch=1)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, later, strict=True))


def test_train_transforms_augment_training_batches_only(tmp_path, mnist_root):
    spec = make_spec(tmp_path, f"""
        source: {{MNIST: {{root: {mnist_root}}}}}
        val: {{fraction: 0.2}}
        train_transforms: [{{RandomCrop: {{size: 28, padding: 4}}}}]
        transforms: [ToImage, {{ToDtype: {{dtype: float32, scale: true}}}}]
        batch_size: 30
        """, input="[1, 28, 28]")
    data = build_data(spec)
    raw = resolve_splits(spec)
    val = torch.cat([x for x, _ in data.val])
    assert torch.equal(val, F.to_dtype(raw.val.inputs, torch.float32, scale=True))  # eval batches: the transforms, no augmentation
    data.train.set_epoch(0)
    order = torch.cat([y for _, y in data.train])
    train = torch.cat([x for x, _ in data.train])
    assert train.shape == (240, 1, 28, 28) and train.dtype == torch.float32
    unaugmented = F.to_dtype(raw.train.inputs, torch.float32, scale=True)
    changed = [not torch.equal(a, b) for a, b in zip(train, unaugmented[data.train.order()])]
    assert sum(changed) > 200 and torch.equal(order, raw.train.targets[data.train.order()])


def test_a_transform_that_fails_per_sample_is_located(tmp_path):
    same_images(tmp_path)
    spec = make_spec(tmp_path, """
        source: {ArrayFile: {path: same.npz}}
        train_transforms: [{RandomResizedCrop: {size: 4}}, {RandomCrop: {size: 9}}]
        """)
    message = spec_error(spec)
    assert f"{spec.document.file}:4:" in message and "RandomCrop fails" in message and "pad_if_needed" in message


# --------------------------------------------------------------------------- normalization statistics

def test_normalize_auto_uses_the_training_splits_mean_and_std(tmp_path):
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 256, size=(200, 3, 4, 4), dtype=np.uint8)
    inputs[:, 1] //= 4  # channels that differ
    write_npz(tmp_path / "rgb.npz", inputs, rng.integers(0, 3, size=200))
    spec = make_spec(tmp_path, """
        source: {ArrayFile: {path: rgb.npz}}
        val: {fraction: 0.25}
        transforms: [ToImage, {ToDtype: {dtype: float32, scale: true}}, {Normalize: {mean: auto, std: auto}}]
        """, input="[3, 4, 4]")
    data = build_data(spec)
    train = F.to_dtype(resolve_splits(spec).train.inputs, torch.float32, scale=True).double()  # train alone
    mean, std = train.mean((0, 2, 3)), train.std((0, 2, 3))
    assert not torch.allclose(mean, (torch.as_tensor(inputs).double() / 255).mean((0, 2, 3)), atol=1e-5)
    recorded = spec.to_dict()["data"]["transforms"][2]["Normalize"]
    torch.testing.assert_close(torch.tensor(recorded["mean"], dtype=torch.float64), mean, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(torch.tensor(recorded["std"], dtype=torch.float64), std, rtol=1e-6, atol=1e-7)
    x = torch.cat([x for x, _ in batches_of(data.train)]).double()
    torch.testing.assert_close(x.mean((0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std((0, 2, 3)), torch.ones(3, dtype=torch.float64), atol=1e-5, rtol=0)


def test_normalize_auto_after_a_random_transform_is_a_located_error(tmp_path):
    same_images(tmp_path)
    spec = make_spec(tmp_path, """
        source: {ArrayFile: {path: same.npz}}
        train_transforms: [RandomHorizontalFlip, {Normalize: {mean: auto, std: [1.0]}}]
        """)
    message = spec_error(spec)
    assert f"{spec.document.file}:4:" in message and "RandomHorizontalFlip is random" in message


def test_normalize_auto_is_a_schema_choice_and_other_strings_are_not(tmp_path):
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text("data:\n  source: {ArrayFile: {path: x.npz}}\n  transforms:\n"
                         "    - Normalize: {mean: automatic, std: auto}\n"
                         "model: {input: [1], layers: [Flatten]}\nloss: CrossEntropyLoss\noptimizer: Adam\n")
    with pytest.raises(SpecError) as info:
        load_spec(spec_file)
    assert f"{spec_file}:4:" in str(info.value) and "mean" in str(info.value)


# --------------------------------------------------------------------------- stratified splits

def imbalanced(folder: Path) -> Path:
    counts = {0: 700, 1: 200, 2: 90, 3: 10}
    targets = np.concatenate([np.full(n, c) for c, n in counts.items()])
    targets = np.random.default_rng(0).permutation(targets)
    return write_npz(folder / "imbalanced.npz", np.arange(len(targets)).reshape(-1, 1), targets)


def class_counts(targets: torch.Tensor) -> list[int]:
    return torch.bincount(targets, minlength=4).tolist()


def test_stratified_splits_keep_each_classes_proportion(tmp_path):
    imbalanced(tmp_path)
    spec = make_spec(tmp_path, """
        source: {ArrayFile: {path: imbalanced.npz}}
        val: {fraction: 0.1, stratify: true}
        test: {fraction: 0.2, stratify: true}
        """, input="[1]")
    splits = resolve_splits(spec)
    assert class_counts(splits.val.targets) == [70, 20, 9, 1]
    assert class_counts(splits.test.targets) == [140, 40, 18, 2]
    assert class_counts(splits.train.targets) == [490, 140, 63, 7]
    ids = torch.cat([splits.train.inputs, splits.val.inputs, splits.test.inputs]).flatten()
    assert sorted(ids.tolist()) == list(range(1000))  # disjoint, and nothing lost
    again = resolve_splits(make_spec(tmp_path, Path(spec.document.file).read_text().split("data:\n")[1]
                                     .split("model:")[0], input="[1]", name="again"))
    assert torch.equal(again.val.inputs, splits.val.inputs)  # seeded

    plain = resolve_splits(make_spec(tmp_path, """
        source: {ArrayFile: {path: imbalanced.npz}}
        val: {fraction: 0.1}
        """, input="[1]", name="plain"))
    assert len(plain.val) == 100 and class_counts(plain.val.targets) != [70, 20, 9, 1]


def test_stratified_carving_rounds_each_class_and_keeps_the_total(tmp_path):
    imbalanced(tmp_path)
    spec = make_spec(tmp_path, """
        source: {ArrayFile: {path: imbalanced.npz}}
        val: {fraction: 0.15, stratify: true}
        """, input="[1]")
    counts = class_counts(resolve_splits(spec).val.targets)
    assert sum(counts) == 150
    assert all(abs(c - share) < 1 for c, share in zip(counts, [105, 30, 13.5, 1.5]))


def test_stratified_carving_reads_a_column_of_labels(tmp_path):
    """Binary 0/1 targets of shape (N, 1), as Synthetic and tables give them, are one label per sample."""
    targets = np.concatenate([np.zeros(90, np.int64), np.ones(10, np.int64)])[np.random.default_rng(1).permutation(100)]
    write_npz(tmp_path / "column.npz", np.zeros((100, 1), np.float32), targets.reshape(-1, 1))
    spec = make_spec(tmp_path, """
        source: {ArrayFile: {path: column.npz}}
        val: {fraction: 0.2, stratify: true}
        """, input="[1]")
    val = resolve_splits(spec).val.targets
    assert val.shape == (20, 1) and val.sum().item() == 2  # 2 of the 10 positives: their share, exactly


def test_stratify_needs_a_fraction_and_class_targets(tmp_path):
    imbalanced(tmp_path)
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text("data:\n  source: {ArrayFile: {path: imbalanced.npz}}\n  val: {split: test, stratify: true}\n"
                         "model: {input: [1], layers: [Flatten]}\nloss: CrossEntropyLoss\noptimizer: Adam\n")
    with pytest.raises(SpecError) as info:
        load_spec(spec_file)
    assert f"{spec_file}:3:" in str(info.value) and "stratify needs fraction" in str(info.value)

    write_npz(tmp_path / "regression.npz", np.zeros((20, 1), np.float32), np.linspace(0, 1, 20, dtype=np.float32))
    spec = make_spec(tmp_path, """
        source: {ArrayFile: {path: regression.npz}}
        val: {fraction: 0.2, stratify: true}
        """, input="[1]")
    message = spec_error(spec)
    assert f"{spec.document.file}:4:" in message and "stratify needs one class index per sample" in message


# --------------------------------------------------------------------------- in memory or DataLoader

LOADER_DATA = """
    source: {{MNIST: {{root: {root}}}}}
    val: {{fraction: 0.1}}
    train_transforms: [{{RandomCrop: {{size: 28, padding: 2}}}}, RandomHorizontalFlip]
    transforms: [ToImage, {{ToDtype: {{dtype: float32, scale: true}}}}, {{Normalize: {{mean: auto, std: auto}}}}]
    batch_size: 64
    {loader}
    """


@pytest.mark.parametrize("workers", [0, 1])
def test_dataloader_path_gives_the_in_memory_batches(tmp_path, mnist_root, workers):
    def data(loader: str):
        spec = make_spec(tmp_path, LOADER_DATA.format(root=mnist_root, loader=loader), input="[1, 28, 28]",
                         seed=3, name=f"spec_{len(loader)}")
        return spec, build_data(spec)

    memory_spec, memory = data("loader: memory")
    loader_spec, loader = data(f"loader: dataloader\n    num_workers: {workers}")
    assert memory.description.startswith("data: in memory on cpu (")
    assert loader.description.startswith(f"data: DataLoader, {workers} worker")
    assert memory_spec.to_dict()["data"]["transforms"] == loader_spec.to_dict()["data"]["transforms"]
    for epoch in (0, 1):
        for name in ("train", "val", "test"):
            ours, theirs = batches_of(getattr(memory, name), epoch), batches_of(getattr(loader, name), epoch)
            assert len(ours) == len(theirs)
            for (x, y), (lx, ly) in zip(ours, theirs, strict=True):
                assert torch.equal(y, ly) and y.dtype == ly.dtype == torch.int64  # the same samples, same order
                torch.testing.assert_close(x, lx)  # and here, the same augmentation too
    first, second = batches_of(loader.train, 0), batches_of(loader.train, 1)
    assert not torch.equal(first[0][1], second[0][1])  # reshuffled each epoch


def test_auto_chooses_a_dataloader_when_the_data_exceeds_the_memory_budget(tmp_path, mnist_root, monkeypatch):
    spec = make_spec(tmp_path, LOADER_DATA.format(root=mnist_root, loader=""), input="[1, 28, 28]")
    assert build_data(spec).description.startswith("data: in memory on cpu (")
    monkeypatch.setattr("declarative.data.loading.MEMORY_FRACTION", 1e-9)  # a machine with almost no memory
    spec = make_spec(tmp_path, LOADER_DATA.format(root=mnist_root, loader=""), input="[1, 28, 28]")
    data = build_data(spec)
    assert data.description.startswith("data: DataLoader, 0 workers (") and "over the in-memory budget" in \
        data.description
    assert sum(len(y) for _, y in data.train) == 270


def test_a_source_whose_size_exceeds_the_budget_is_read_through_its_dataset(tmp_path, monkeypatch):
    write_npz(tmp_path / "d.npz", np.zeros((40, 1, 8, 8), np.uint8), np.arange(40) % 4)
    monkeypatch.setattr(ArrayFile, "nbytes", lambda self, split: 10**15)  # as a lazy source would report
    spec = make_spec(tmp_path, "source: {ArrayFile: {path: d.npz}}\nbatch_size: 16")
    data = build_data(spec)
    assert data.description.startswith("data: DataLoader") and "over the in-memory budget" in data.description
    assert [len(y) for _, y in data.train] == [16, 16, 8]


def test_source_defaults_read_the_split_through_load(tmp_path):
    write_npz(tmp_path / "d.npz", np.arange(10, dtype=np.uint8).reshape(10, 1), np.arange(10))
    source = ArrayFile(str(tmp_path / "d.npz"))
    dataset = source.dataset("train")
    assert len(dataset) == 10 and [int(t) for t in dataset[3]] == [3, 3]
    assert source.nbytes("train") is None


def test_run_reports_how_it_loads_the_data(tmp_path):
    write_mnist(tmp_path / "mnist", n_train=200, n_test=50)
    spec = tmp_path / "run.yaml"
    spec.write_text(textwrap.dedent(f"""
        seed: 0
        data:
          source: {{MNIST: {{root: {tmp_path / 'mnist'}}}}}
          transforms: [ToImage, {{ToDtype: {{dtype: float32, scale: true}}}}]
          batch_size: 50
        model: {{input: [1, 28, 28], layers: [Flatten, {{Linear: {{out_features: 10}}}}]}}
        loss: CrossEntropyLoss
        optimizer: Adam
        trainer: {{max_epochs: 1, enable_progress_bar: false}}
        logger: false
        """))
    result = subprocess.run([sys.executable, "-m", "declarative", "run", str(spec)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # 250 samples × 784 float32 + int64 targets, after ToDtype ran once over each split
    assert "data: in memory on cpu (786 kB)" in result.stdout


def test_random_resized_crop_draws_boxes_and_resizes_them_as_v2_does():
    from torchvision.transforms import v2

    from declarative.data.augment import _ResizedCrop, batch_step

    transform = v2.RandomResizedCrop(12)
    step = batch_step(transform)
    assert isinstance(step, _ResizedCrop)
    top, left, h, w = step.boxes(4000, 20, 30, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert bool(((top >= 0) & (top + h <= 20) & (left >= 0) & (left + w <= 30) & (h > 0) & (w > 0)).all())
    torch.manual_seed(0)
    theirs = [transform.make_params([torch.zeros(3, 20, 30)]) for _ in range(4000)]
    area = torch.tensor([p["height"] * p["width"] / 600.0 for p in theirs])
    ratio = torch.tensor([p["width"] / p["height"] for p in theirs])
    assert abs(float((h * w / 600.0).mean() - area.mean())) < 0.02  # the same distribution of boxes
    assert abs(float((w / h).double().mean() - ratio.mean())) < 0.03

    images = torch.randint(0, 256, (50, 3, 20, 30), dtype=torch.uint8)
    for x, tolerance in ((images, 1), (images.float(), 1e-3)):
        out = step.resample(x, top[:50], left[:50], h[:50], w[:50])
        expected = torch.stack([F.resized_crop(x[i], int(top[i]), int(left[i]), int(h[i]), int(w[i]), [12, 12],
                                               antialias=True) for i in range(50)])
        assert out.dtype == x.dtype and (out.double() - expected.double()).abs().max() <= tolerance


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_both_paths_augment_on_the_device_and_agree(tmp_path, mnist_root):
    data = {}
    for loader in ("memory", "dataloader"):
        spec = make_spec(tmp_path, LOADER_DATA.format(root=mnist_root, loader=f"loader: {loader}").replace(
            "RandomHorizontalFlip", "RandomHorizontalFlip, {RandomResizedCrop: {size: 28}}"),
            input="[1, 28, 28]", name=loader)
        data[loader] = build_data(spec, device="cuda")
    assert data["memory"].description.startswith("data: in memory on cuda")
    assert "pinned memory" in data["dataloader"].description
    for (x, y), (lx, ly) in zip(batches_of(data["memory"].train, 1), batches_of(data["dataloader"].train, 1),
                                strict=True):
        assert x.device.type == lx.device.type == "cuda" and torch.equal(y, ly)
        torch.testing.assert_close(x, lx)
