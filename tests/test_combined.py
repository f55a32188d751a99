"""Features used together through the command line, as a researcher would: image folders with
augmentation, statistics, stratified splits and data values; tasks inferred from CSV and Synthetic
data; monitors of per-class metrics; checkpoints tested from another folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from declarative.run import fit_spec
from declarative.safe_load import load_weights_only
from declarative.spec.validate import load_spec
from trainer_specs import quiet


def dtrain(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "declarative", *map(str, args)], capture_output=True, text=True,
                            cwd=cwd, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def write_pets(root: Path) -> None:
    """root/<class>/<i>.png, 16×16 RGB, classes told apart by their brightness; 'eel' has fewer images."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, (low, high), count in (("cat", (0, 140), 20), ("dog", (110, 256), 20), ("eel", (60, 200), 10)):
        (root / label).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(low, high, size=(16, 16, 3), dtype=np.uint8)).save(root / label / f"{i}.png")


PETS = """\
name: pets
seed: 3
data:
  source: {ImageFolder: {root: pets}}
  val: {fraction: 0.2, stratify: true}
  test: {fraction: 0.2, stratify: true}
  train_transforms:
    - RandomCrop: {size: 16, padding: 2}
    - RandomHorizontalFlip
  transforms:
    - ToImage
    - ToDtype: {dtype: float32, scale: true}
    - Normalize: {mean: auto, std: auto}
  batch_size: 8
model:
  layers:
    - Conv2d: {out_channels: 4, kernel_size: 3, padding: 1}
    - ReLU
    - AdaptiveAvgPool2d: {output_size: 1}
    - Flatten
    - Linear: {out_features: "${data.num_classes}"}
optimizer: {Adam: {lr: 0.01}}
trainer: {max_epochs: 2, enable_progress_bar: false}
callbacks:
  - ModelCheckpoint: {monitor: val/accuracy, mode: max}
"""


def test_image_folder_with_augmentation_statistics_and_data_values_tests_again_from_another_folder(tmp_path):
    write_pets(tmp_path / "pets")
    (tmp_path / "pets.yaml").write_text(PETS)
    runs = {}
    for loader in ("dataloader", "memory"):
        result = dtrain("run", "pets.yaml", f"data.loader={loader}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        runs[loader] = json.loads(next((tmp_path / "runs" / "pets").glob(f"version_{len(runs)}/results.json"))
                                  .read_text())
    # both loading paths give the same batches for a seed, hence the same metrics
    assert runs["dataloader"]["test"] == runs["memory"]["test"]
    assert runs["dataloader"]["val"] == runs["memory"]["val"]

    # the record keeps the reference and shows the number it took
    run_dir = Path(runs["memory"]["run_dir"])
    text = (run_dir / "spec.yaml").read_text()
    assert text.startswith("# ${data.num_classes} = 3\n")
    recorded = yaml.safe_load(text)
    assert recorded["model"]["layers"][-1] == {"Linear": {"out_features": "${data.num_classes}"}}
    assert len(recorded["data"]["transforms"][-1]["Normalize"]["mean"]) == 3  # auto: the numbers are recorded
    assert recorded["task"] == "multiclass"

    best = Path(runs["memory"]["best_model_path"])
    assert load_weights_only(best)["data_values"] == {"data.num_classes": 3}
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(best, tmp_path / "elsewhere" / "best.ckpt")
    result = dtrain("test", "best.ckpt", cwd=tmp_path / "elsewhere")
    assert result.returncode == 0, result.stderr
    accuracy = runs["memory"]["test"]["test/accuracy"]
    assert f"test/accuracy   {accuracy:.4f}" in result.stdout

    # the data moves: the checkpoint says where it looked, and an override points it at the new place
    (tmp_path / "pets").rename(tmp_path / "moved")
    result = dtrain("test", "best.ckpt", cwd=tmp_path / "elsewhere")
    assert result.returncode == 1 and "pets" in result.stderr and "Traceback" not in result.stderr
    result = dtrain("test", "best.ckpt", f"data.source.ImageFolder.root={tmp_path / 'moved'}",
                    cwd=tmp_path / "elsewhere")
    assert result.returncode == 0, result.stderr
    assert f"test/accuracy   {accuracy:.4f}" in result.stdout


def write_table(path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    rows = ["a,b,label,flag,count"] + [f"{a:.4f},{b:.4f},{int(a + b > 0)},{int(a > 0)},{int(abs(4 * a + 3 * b))}"
                                       for a, b in x]
    path.write_text("\n".join(rows) + "\n")


TABLE = """\
name: {name}
seed: 0
data:
  source: {{{source}}}
  val: {{fraction: 0.25}}
model:
  layers: [{{Linear: {{out_features: 8}}}}, ReLU, {{Linear: {{out_features: {outputs}}}}}]
optimizer: {{Adam: {{lr: 0.01}}}}
trainer: {{max_epochs: 1, enable_progress_bar: false}}
logger: false
"""


def test_integer_zero_one_targets_are_binary_and_synthetic_binary_and_multilabel_say_so_too(tmp_path):
    write_table(tmp_path / "t.csv")
    specs = {"csv": ("CSV: {path: t.csv, targets: label, inputs: [a, b]}", 1, "binary"),
             "csv_multilabel": ("CSV: {path: t.csv, targets: [label, flag], inputs: [a, b]}", 2, "multilabel"),
             "synthetic_binary": ("Synthetic: {shape: [6], size: 80, task: binary}", 1, "binary"),
             "synthetic_multilabel": ("Synthetic: {shape: [6], size: 80, task: multilabel, num_classes: 3}", 3,
                                      "multilabel")}
    for name, (source, outputs, task) in specs.items():
        (tmp_path / f"{name}.yaml").write_text(TABLE.format(name=name, source=source, outputs=outputs))
        result = fit_spec(load_spec(tmp_path / f"{name}.yaml", [f"trainer.default_root_dir={tmp_path / 'runs'}"]),
                          console=quiet())  # in-process: four runs
        recorded = yaml.safe_load((result.run_dir / "spec.yaml").read_text())
        assert (recorded["task"], recorded["loss"], recorded["metrics"]) == (task, "BCEWithLogitsLoss",
                                                                             ["accuracy", "f1"]), name
        assert set(result.val_metrics) == {"val/loss", "val/accuracy", "val/f1"}


def test_integer_targets_beyond_one_with_one_output_are_an_error_not_a_binary_run(tmp_path):
    write_table(tmp_path / "t.csv")
    (tmp_path / "counts.yaml").write_text(TABLE.format(name="counts", source="CSV: {path: t.csv, targets: count, "
                                                                             "inputs: [a, b]}", outputs=1))
    result = dtrain("run", "counts.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("counts.yaml:4:11: binary targets are 0 or 1, but these go up to ")
    assert "use task: regression" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "counts").exists()
    result = dtrain("run", "counts.yaml", "task=regression", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "val/r2" in result.stdout
    # what dtrain chose for the spec is said at the start of the run
    assert "task: regression, loss: MSELoss, metrics: mse, mae, r2" in result.stdout
    inferred = dtrain("run", "counts.yaml", "data.source={CSV: {path: t.csv, targets: label, inputs: [a, b]}}",
                      cwd=tmp_path)
    assert "task: binary (inferred), loss: BCEWithLogitsLoss, metrics: accuracy, f1" in inferred.stdout, inferred.stderr


def test_a_monitor_of_a_metric_logged_per_class_says_how_to_monitor_its_average(tmp_path):
    write_table(tmp_path / "t.csv")
    spec = TABLE.format(name="f1", source="CSV: {path: t.csv, targets: label, inputs: [a, b]}", outputs=2)
    spec += ("task: multiclass\nmetrics: [accuracy, {f1: {average: none}}, confusion_matrix]\n"
             "callbacks: [{EarlyStopping: {monitor: val/f1, mode: max}}]\n")
    (tmp_path / "f1.yaml").write_text(spec)
    (tmp_path / "both.yaml").write_text(spec.replace("confusion_matrix]", "confusion_matrix, f1]"))
    result = dtrain("validate", "f1.yaml", "both.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (  # both.yaml, which also lists f1, is valid
        "f1.yaml:13:39: EarlyStopping monitor 'val/f1' is not logged: the run logs 'val/f1_none' (per-class values), "
        "which cannot be monitored — list the metric also with its default average (metrics: [..., f1]) to "
        "monitor that")


def test_train_transforms_that_change_the_sample_shape_are_an_error_at_train_transforms(tmp_path):
    write_pets(tmp_path / "pets")
    spec = PETS.replace("    - RandomCrop: {size: 16, padding: 2}\n", "    - Resize: {size: 12}\n")
    (tmp_path / "pets.yaml").write_text(spec)
    result = dtrain("run", "pets.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == ("pets.yaml:8:5: train_transforms change the sample shape from [3, 16, 16] to "
                                     "[3, 12, 12], but val batches do not get them — keep the shape (e.g. RandomCrop "
                                     "with padding), or resize in transforms")


def test_a_monitor_that_the_inferred_task_does_not_log_names_that_task(tmp_path):
    write_table(tmp_path / "t.csv")
    spec = TABLE.format(name="price", source="CSV: {path: t.csv, targets: a, inputs: [b]}", outputs=1)
    (tmp_path / "price.yaml").write_text(spec + "callbacks: [{ModelCheckpoint: {monitor: val/accuracy, mode: max}}]\n")
    result = dtrain("run", "price.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("price.yaml:11:41: ModelCheckpoint monitor 'val/accuracy' is not a metric this "
                                    "run logs")
    assert result.stderr.strip().endswith("; this run's task is regression, inferred from the data — name another "
                                          "with task:")


def test_dataloader_settings_beside_loader_memory_are_an_error(tmp_path):
    write_table(tmp_path / "t.csv")
    spec = TABLE.format(name="mem", source="CSV: {path: t.csv, targets: label, inputs: [a, b]}", outputs=1)
    (tmp_path / "mem.yaml").write_text(spec.replace("  val: {fraction: 0.25}\n", "  val: {fraction: 0.25}\n"
                                                    "  loader: memory\n  num_workers: 2\n"))
    result = dtrain("validate", "mem.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == ("mem.yaml:7:3: num_workers is a DataLoader setting, but loader: memory batches "
                                     "tensors without one — remove it, or use loader: dataloader (or auto)")
