"""Bad data through `dtrain run`: a located error and exit 1 before training, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from declarative.errors import SpecError
from specs import mlp_text, write_spec


def dtrain_run(spec: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "declarative", "run", str(spec)], capture_output=True, text=True,
                            cwd=spec.parent, timeout=120)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result


def line_of(spec: Path, needle: str) -> str:
    """`file:line:` of the first line of the spec that holds `needle`."""
    number = next(i for i, line in enumerate(spec.read_text().splitlines(), start=1) if needle in line)
    return f"{spec}:{number}:"


def run_fails(spec: Path, needle: str) -> str:
    """Run the spec; it must fail with one error located on the line holding `needle`. Returns the error."""
    result = dtrain_run(spec)
    assert result.returncode == 1, result.stdout + result.stderr
    assert line_of(spec, needle) in result.stderr, result.stderr
    assert not (spec.parent / "runs").exists()  # rejected before a run folder was made
    return " ".join(result.stderr.split())


def test_labels_beyond_the_models_class_scores_name_the_layer(tmp_path):
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 10, size=60)
    targets[7] = 11
    np.savez(tmp_path / "data.npz", inputs=rng.integers(0, 256, size=(60, 1, 8, 8), dtype=np.uint8), targets=targets)
    spec = write_spec(tmp_path, mlp_text("data.npz"))
    error = run_fails(spec, "Linear: {out_features: 10}")
    assert ("the targets go up to 11 but the model gives 10 class scores (layer 3, Linear out_features=10)"
            in error), error
    assert "set out_features: 12" in error


def test_negative_labels_are_a_located_error_unless_the_loss_ignores_them(tmp_path):
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 10, size=60)
    targets[3] = -1
    np.savez(tmp_path / "data.npz", inputs=rng.integers(0, 256, size=(60, 1, 8, 8), dtype=np.uint8), targets=targets)
    spec = write_spec(tmp_path, mlp_text("data.npz"))
    error = run_fails(spec, "ArrayFile")
    assert ("the targets go down to -1, but CrossEntropyLoss needs class indices from 0 (or its ignore_index, -100)"
            in error), error
    targets[3] = -100  # CrossEntropyLoss's own ignore_index: an unlabelled sample, trained around
    np.savez(tmp_path / "data.npz", inputs=rng.integers(0, 256, size=(60, 1, 8, 8), dtype=np.uint8), targets=targets)
    assert dtrain_run(spec).returncode == 0


@pytest.mark.parametrize("name, write, expected", [
    ("missing.npz", None, "no such file"),
    ("picture.npz", lambda p: Image.new("RGB", (4, 4)).save(p, format="PNG"), "is not a .npz file"),
])
def test_a_data_file_that_is_missing_or_of_another_format_is_a_located_error(tmp_path, name, write, expected):
    if write:
        write(tmp_path / name)
    spec = write_spec(tmp_path, mlp_text(name))
    error = run_fails(spec, name)
    assert name in error and expected in error, error


def tabular_spec(folder: Path, source: str, input: int = 3) -> Path:
    text = mlp_text("unused").replace("{ArrayFile: {path: unused}}", source).replace("[1, 8, 8]", f"[{input}]")
    return write_spec(folder, text.replace("transforms: [{ToDtype: {dtype: float32}}]", "transforms: []"))


def test_csv_column_that_does_not_exist(tmp_path):
    (tmp_path / "flowers.csv").write_text("petal,sepal,species\n" + "1.5,2.5,setosa\n" * 20)
    spec = tabular_spec(tmp_path, "{CSV: {path: flowers.csv, targets: spcies}}", input=2)
    error = run_fails(spec, "spcies")
    assert "flowers.csv has no column 'spcies' — did you mean 'species'? (its columns: petal, sepal, species)" in error


def test_images_of_mixed_sizes_without_a_resize(tmp_path):
    for label, size in (("cat", (8, 8)), ("dog", (8, 6))):
        (tmp_path / "pets" / label).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", size).save(tmp_path / "pets" / label / f"{i}.png")
    text = mlp_text("unused").replace("{ArrayFile: {path: unused}}", "{ImageFolder: {root: pets}}")
    spec = write_spec(tmp_path, text.replace("[1, 8, 8]", "[3, 8, 8]"))
    error = run_fails(spec, "pets")
    assert "ImageFolder images differ in size: cat/0.png is 3×8×8 but dog/0.png is 3×6×8 (C×H×W)" in error, error
    assert "start data.transforms with a Resize or CenterCrop" in error


def test_a_largest_target_the_loss_ignores_is_not_an_error(tmp_path):
    from declarative.data.targets import check_targets_fit_model
    from declarative.model.builder import plan_model
    from declarative.spec.config import spec_from_document
    from declarative.spec.document import load_file

    np.savez(tmp_path / "data.npz", inputs=np.zeros((4, 1, 8, 8), np.float32), targets=np.array([0, 255, 9, 1]))
    text = mlp_text("data.npz").replace("loss: CrossEntropyLoss", "loss: {CrossEntropyLoss: {ignore_index: 255}}")
    spec = spec_from_document(load_file(write_spec(tmp_path, text)))
    check_targets_fit_model(spec, 255, plan_model(spec))  # 255 is ignored: nothing to report
    spec = spec_from_document(load_file(write_spec(tmp_path, mlp_text("data.npz"))))
    with pytest.raises(SpecError, match="the targets go up to 255 but the model gives 10 class scores"):
        check_targets_fit_model(spec, 255, plan_model(spec))
