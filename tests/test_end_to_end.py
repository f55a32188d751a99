"""What a new user does: the quick start, a second run, testing a checkpoint alone, the MNIST CNN."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from idx import write_mnist
from specs import write_spec

ROOT = Path(__file__).resolve().parents[1]


def dtrain(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "declarative", *map(str, args)], capture_output=True, text=True,
                            cwd=cwd, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """`dtrain run specs/digits.yaml`, as the README's quick start runs it."""
    cwd = tmp_path_factory.mktemp("quickstart")
    result = dtrain("run", ROOT / "specs" / "digits.yaml", cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return cwd / "runs" / "digits" / "version_0"


def test_quick_start_reaches_95_percent_test_accuracy(digits_run):
    results = json.loads((digits_run / "results.json").read_text())
    assert results["test"]["test/accuracy"] >= 0.95, results


def test_run_folder_holds_the_experiment_record(digits_run):
    assert (digits_run / "metrics.csv").is_file()
    assert list(digits_run.glob("events.out.tfevents.*"))
    assert (digits_run / "checkpoints" / "last.ckpt").is_file()
    resolved = yaml.safe_load((digits_run / "spec.yaml").read_text())
    assert resolved["seed"] == 7 and resolved["trainer"]["max_epochs"] == 15
    assert resolved["data"]["source"]["ArrayFile"]["path"] == str(ROOT / "specs" / "data" / "digits.npz")


def test_best_checkpoint_alone_reproduces_the_test_accuracy(digits_run, tmp_path):
    results = json.loads((digits_run / "results.json").read_text())
    best = Path(results["best_model_path"])
    assert best.parent == digits_run / "checkpoints" and best.name != "last.ckpt"
    moved = tmp_path / "model.ckpt"  # alone: away from its run folder
    moved.write_bytes(best.read_bytes())
    checkpoint = torch.load(moved, weights_only=True)
    assert checkpoint["spec"]["name"] == "digits"
    result = dtrain("test", moved, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    accuracy = float(result.stdout.split("test/accuracy")[1].split()[0])
    assert accuracy == pytest.approx(results["test"]["test/accuracy"], abs=1e-4)


def test_a_second_run_gets_the_next_version(tmp_path):
    spec = write_spec(tmp_path)
    for _ in range(2):
        assert dtrain("run", spec, "trainer.max_epochs=1", cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in (tmp_path / "runs" / "tiny").iterdir()) == ["version_0", "version_1"]


def test_print_spec_shows_the_resolved_spec_without_running(tmp_path):
    spec = write_spec(tmp_path)
    result = dtrain("run", spec, "trainer.max_epochs=4", "data.batch_size=16", "--print-spec", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["trainer"]["max_epochs"] == 4 and resolved["data"]["batch_size"] == 16
    assert resolved["trainer"]["precision"] == "32-true"  # defaults are filled in
    assert not (tmp_path / "runs").exists()
    again = tmp_path / "resolved.yaml"
    again.write_text(result.stdout)
    assert dtrain("validate", again, cwd=tmp_path).returncode == 0  # the record is itself a valid spec


def test_mnist_cnn_trains_on_idx_files(tmp_path):
    """The article's CNN, on MNIST files in the real IDX format, through torchvision's MNIST."""
    write_mnist(tmp_path / "data", n_train=256, n_test=64)
    result = dtrain("run", ROOT / "specs" / "mnist_cnn.yaml", f"data.source.MNIST.root={tmp_path / 'data'}",
                    "data.source.MNIST.download=false", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "runs" / "mnist-cnn" / "version_0" / "results.json").read_text())
    assert results["test"]["test/accuracy"] > 0.5  # the written images are learnable: a square placed by class
