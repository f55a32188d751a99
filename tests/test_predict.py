"""`dtrain predict`, and `dtrain test` on a run folder: a trained model applied to new files, its predictions
named in the data's own terms, from the checkpoint alone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

from declarative.assembly.trained import load_trained
from declarative.run import fit_spec
from declarative.safe_load import load_weights_only
from declarative.spec.validate import load_spec
from test_combined import PETS, dtrain, write_pets
from trainer_specs import quiet


def _train(tmp_path: Path, name: str, text: str, *overrides: str):
    (tmp_path / f"{name}.yaml").write_text(text)
    spec = load_spec(tmp_path / f"{name}.yaml", [f"trainer.default_root_dir={tmp_path / 'runs'}", "logger=false",
                                                 *overrides])
    return fit_spec(spec, console=quiet())


def _new_images(folder: Path, count: int) -> list[Path]:
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(1)
    files = []
    for i in range(count):
        files.append(folder / f"new_{i}.png")
        Image.fromarray(rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)).save(files[-1])
    return files


def test_predict_on_a_flat_folder_of_new_pngs_names_the_class_folders_the_model_chooses(tmp_path):
    write_pets(tmp_path / "pets")
    result = _train(tmp_path, "pets", PETS, "trainer.max_epochs=1")
    files = _new_images(tmp_path / "new", 6)

    # the run folder stands for its best checkpoint; --output by suffix
    out = dtrain("predict", "runs/pets", "new", "--output", "predicted.csv", "--top-k", "2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with open(tmp_path / "predicted.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["id"] for row in rows] == [str(Path("new") / f.name) for f in files]
    assert list(rows[0]) == ["id", "prediction", "probability", "top2", "top2_probability"]

    # the same PNGs, preprocessed by hand as training did: RGB uint8 → [0, 1] → the recorded statistics
    contents = load_weights_only(result.best_model_path)
    normalize = contents["spec"]["data"]["transforms"][-1]["Normalize"]
    from PIL import Image

    x = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1) for f in files])
    x = (x.float() / 255 - torch.tensor(normalize["mean"]).view(1, 3, 1, 1)) / torch.tensor(normalize["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = load_trained(result.best_model_path).model(x)
    classes = sorted(p.name for p in (tmp_path / "pets").iterdir())  # ImageFolder numbers sorted class folders
    assert [row["prediction"] for row in rows] == [classes[i] for i in logits.argmax(1).tolist()]
    probabilities = logits.softmax(1).max(1).values.tolist()
    assert np.allclose([float(row["probability"]) for row in rows], probabilities, atol=1e-5)

    # RUN/best, a single file, JSON lines; a table on stdout without --output
    out = dtrain("predict", f"{result.run_dir}/best", str(files[0]), "-o", "one.jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "one.jsonl").read_text())["prediction"] == rows[0]["prediction"]
    out = dtrain("predict", "runs/pets/version_0/best", str(files[1]), cwd=tmp_path)
    assert out.returncode == 0 and rows[1]["prediction"] in out.stdout.splitlines()[1], out.stdout

    # inputs of another kind than the model's: a located error before any batch runs
    np.save(tmp_path / "wrong.npy", np.zeros((2, 1, 8, 8), dtype=np.uint8))
    out = dtrain("predict", "runs/pets", "wrong.npy", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.startswith("wrong.npy:0: the inputs give samples of shape ") and out.stderr.strip().endswith(
        "after the checkpoint's evaluation transforms, but its model takes [3, 16, 16]; give inputs of the kind it "
        "was trained on"), out.stderr

    # dtrain test: a run folder's checkpoint on its val split; a run without last.ckpt says so
    out = dtrain("test", "runs/pets/version_0/best", "--split", "val", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "pets (val)" in out.stdout and f"{result.val_metrics['val/accuracy']:.4f}" in out.stdout
    out = dtrain("test", "runs/pets/version_0/last", cwd=tmp_path)
    assert out.returncode == 1 and out.stderr.strip() == (
        "runs/pets/version_0: the run has no last checkpoint (looked in results.json and "
        "runs/pets/version_0/checkpoints); give a .ckpt file, or a run whose ModelCheckpoint saved one")


WORDS = """\
name: flowers
seed: 0
data:
  source: {CSV: {path: flowers.csv, targets: species}}
  val: {fraction: 0.25}
  batch_size: 16
model:
  layers: [{Linear: {out_features: 16}}, ReLU, {Linear: {out_features: 3}}]
optimizer: {Adam: {lr: 0.05}}
trainer: {max_epochs: 5, enable_progress_bar: false}
"""


def _flowers(path: Path, n: int, seed: int, with_target: bool = True) -> list[tuple[float, str, str]]:
    """Rows of (length, colour, species): the species follows the length; colour is a categorical input."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        species = ["iris", "rose", "tulip"][int(rng.integers(0, 3))]
        length = {"iris": 1.0, "rose": 3.0, "tulip": 5.0}[species] + rng.normal(0, 0.3)
        rows.append((round(float(length), 3), str(rng.choice(["red", "white"])), species))
    header = "length,colour,species" if with_target else "colour,length"
    lines = [f"{a},{c},{s}" if with_target else f"{c},{a}" for a, c, s in rows]  # columns in another order
    path.write_text(header + "\n" + "\n".join(lines) + "\n")
    return rows


def test_predict_on_a_csv_without_its_target_column_names_the_classes_in_their_words(tmp_path):
    _flowers(tmp_path / "flowers.csv", 150, seed=0)
    result = _train(tmp_path, "flowers", WORDS)
    rows = _flowers(tmp_path / "new.csv", 12, seed=5, with_target=False)
    out = dtrain("predict", result.last_model_path, "new.csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["id", "prediction", "probability"]
    predicted = [line.split()[1] for line in lines[1:]]
    # encoded by hand as training encoded it: length, then colour one-hot (red, white)
    x = torch.tensor([[a, c == "red", c == "white"] for a, c, _ in rows], dtype=torch.float32)
    with torch.no_grad():
        logits = load_trained(result.last_model_path).model(x)
    assert predicted == [["iris", "rose", "tulip"][i] for i in logits.argmax(1).tolist()]
    assert sum(p == s for p, (_, _, s) in zip(predicted, rows)) >= 9  # it learned the species from the length

    (tmp_path / "odd.csv").write_text("length,shade\n2.0,red\n")
    out = dtrain("predict", result.last_model_path, "odd.csv", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip() == "odd.csv: has no column 'colour', an input of the model (its inputs: length, colour)"
