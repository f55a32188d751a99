"""`dtrain init DATA` writes starter specs that validate and train as written; `dtrain runs` lists the runs;
`dtrain --version`."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def dtrain(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "declarative", *args], capture_output=True, text=True, cwd=cwd,
                          input=stdin, timeout=600)


def test_version_prints_the_installed_version(tmp_path):
    from importlib import metadata

    result = dtrain("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, f"dtrain {metadata.version('dtrain')}")


def _image_folder(root: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, (name, colour) in enumerate([("cats", 40), ("dogs", 215)]):
        (root / name).mkdir(parents=True)
        for i in range(12):  # two kinds of image: dark and bright, of mixed sizes (the spec resizes them)
            size = (20 + i % 3, 18 + i % 2)
            pixels = np.clip(rng.normal(colour, 20, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


def test_init_on_an_image_folder_gives_a_spec_that_trains_and_runs_lists_the_run(tmp_path):
    _image_folder(tmp_path / "data" / "pets")
    work = tmp_path / "project"
    work.mkdir()
    written = dtrain("init", "../data/pets", cwd=work)
    assert written.returncode == 0, written.stderr
    spec = (work / "pets.yaml").read_text()
    assert spec.startswith("# yaml-language-server: $schema=")
    assert "ImageFolder: {root: ../data/pets}" in spec and "2 classes: cats, dogs" in spec

    assert dtrain("validate", "pets.yaml", cwd=work).returncode == 0
    run = dtrain("run", "pets.yaml", "trainer.enable_progress_bar=false", cwd=work)
    assert run.returncode == 0, run.stderr
    record = json.loads((work / "runs" / "pets" / "version_0" / "run.json").read_text())
    assert record["status"] == "success" and record["duration_s"] > 0

    # A second run that died without a word (its process is gone) shows as crashed, and first: it is newer.
    crashed = work / "runs" / "pets" / "version_1"
    crashed.mkdir()
    (crashed / "spec.yaml").write_text((work / "runs" / "pets" / "version_0" / "spec.yaml").read_text())
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          timeout=60)
    (crashed / "run.json").write_text(json.dumps({**record, "status": "running", "pid": int(gone.stdout),
                                                  "started": "2999-01-01T00:00:00+00:00"}))
    listed = dtrain("runs", cwd=work)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:6] == ["run", "status", "started", "duration", "epochs", "best"]
    assert lines[1].split()[:2] == ["pets/version_1", "crashed"]
    first = lines[2].split()
    assert first[:2] == ["pets/version_0", "success"]
    epochs = json.loads((work / "runs" / "pets" / "version_0" / "results.json").read_text())["epochs"]
    assert first[5] == str(epochs) and first[6] == "val/accuracy"
    assert dtrain("runs", "other*", cwd=work).stderr.startswith("no runs under runs named 'other*'")


def test_init_on_a_csv_asks_for_the_target_and_gives_a_spec_that_trains(tmp_path):
    rng = np.random.default_rng(0)
    with open(tmp_path / "penguins.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["bill_length", "flipper", "island", "species"])
        for i in range(90):
            species = ["adelie", "gentoo", "chinstrap"][i % 3]
            writer.writerow([round(38 + 5 * (i % 3) + rng.normal(), 1), round(190 + 10 * (i % 3) + rng.normal(), 1),
                             ["biscoe", "dream"][i % 2], species])

    unasked = dtrain("init", "penguins.csv", cwd=tmp_path)  # no terminal to ask on: say what to give
    assert unasked.returncode == 2
    assert "--target" in unasked.stderr and "bill_length, flipper, island, species" in unasked.stderr
    misspelt = dtrain("init", "penguins.csv", "--target", "specie", cwd=tmp_path)
    assert misspelt.returncode == 2 and "did you mean 'species'" in misspelt.stderr

    assert dtrain("init", "penguins.csv", "--target", "species", "-o", "specs/penguins.yaml", cwd=tmp_path).returncode == 0
    spec = (tmp_path / "specs" / "penguins.yaml").read_text()
    assert "CSV: {path: ../penguins.csv, targets: species}" in spec
    again = dtrain("init", "penguins.csv", "--target", "species", "-o", "specs/penguins.yaml", cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr  # nothing the user had is overwritten

    run = dtrain("run", "specs/penguins.yaml", "trainer.enable_progress_bar=false", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "task: multiclass (inferred)" in run.stdout
    results = json.loads(next((tmp_path / "runs" / "penguins").glob("version_*/results.json")).read_text())
    assert results["val"]["val/accuracy"] > 0.5  # three well-separated species


def test_init_on_arrays_of_uint8_images_gives_a_spec_that_trains(tmp_path):
    from declarative.init_spec import starter_spec
    from declarative.run import fit_spec
    from declarative.spec.validate import load_spec
    from trainer_specs import quiet

    rng = np.random.default_rng(0)
    targets = np.arange(300) % 3
    images = (rng.integers(0, 20, size=(300, 1, 6, 6)) + 80 * targets[:, None, None, None]).astype(np.uint8)
    np.savez(tmp_path / "shapes.npz", inputs=images, targets=targets)
    spec_path = tmp_path / "shapes.yaml"
    spec_path.write_text(starter_spec(tmp_path / "shapes.npz", spec_path))
    assert "ToDtype: {dtype: float32}" in spec_path.read_text()  # uint8 values become floats for Linear

    spec = load_spec(spec_path, [f"trainer.default_root_dir={tmp_path / 'runs'}", "trainer.enable_progress_bar=false"])
    result = fit_spec(spec, console=quiet())
    assert result.val_metrics["val/accuracy"] > 0.5
