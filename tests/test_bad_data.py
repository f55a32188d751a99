"""Bad data through `dtrain run`: a located error and exit 1 before training, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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


@pytest.mark.parametrize("name, write, expected", [
    ("missing.npz", None, "no such file"),
    ("picture.npz", lambda p: Image.new("RGB", (4, 4)).save(p, format="PNG"), "is not a .npz file"),
    ("notes.pt", lambda p: p.write_text("just some text\n"), "is not a file written by torch.save"),
])
def test_a_data_file_that_is_missing_or_of_another_format_is_a_located_error(tmp_path, name, write, expected):
    if write:
        write(tmp_path / name)
    spec = write_spec(tmp_path, mlp_text(name))
    error = run_fails(spec, name)
    assert name in error and expected in error, error
