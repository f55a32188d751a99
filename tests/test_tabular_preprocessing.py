"""Tabular preprocessing, as a user of Keras' structured-data recipe meets it: numeric, integer and
string categorical columns, missing cells, fitted on the training split and recorded in the run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from declarative.data import build_data
from declarative.run import fit_spec, test_checkpoint
from declarative.safe_load import load_weights_only
from declarative.spec.validate import load_spec, semantic_problems, spec_from_data
from trainer_specs import quiet


def dtrain(*args, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "declarative", *map(str, args)], capture_output=True, text=True,
                            cwd=cwd, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def write_heart(path: Path, n: int = 200, seed: int = 0) -> None:
    """Keras' heart-disease table in form: the target is planted in thal (a string category), cp and age."""
    rng = np.random.default_rng(seed)
    rows = ["age,sex,cp,chol,thalach,thal,target"]
    for i in range(n):
        age, sex, cp = rng.integers(30, 77), rng.integers(0, 2), rng.integers(0, 4)
        chol, thalach = rng.normal(240, 50), rng.normal(150, 20)
        thal = rng.choice(["fixed", "normal", "reversible"])
        target = int(thal == "reversible" or (cp == 3 and age > 55))
        cells = [str(age), str(sex), str(cp), f"{chol:.1f}", f"{thalach:.1f}", str(thal), str(target)]
        if i % 7 == 3:
            cells[3] = ""  # chol missing
        if i % 11 == 5:
            cells[5] = ""  # thal missing
        rows.append(",".join(cells))
    path.write_text("\n".join(rows) + "\n")


HEART = """\
name: heart
seed: 0
data:
  source:
    CSV:
      path: heart.csv
      targets: target
      categorical: [sex, cp]
      columns:
        age: {scale: standard}
        chol: {scale: standard, missing: median}
        thalach: {scale: minmax}
        thal: {missing: indicator}
  val: {fraction: 0.2}
  test: {fraction: 0.2}
  batch_size: 32
model:
  layers: [{Linear: {out_features: 16}}, ReLU, {Linear: {out_features: 2}}]
optimizer: {Adam: {lr: 0.02}}
trainer: {max_epochs: 6, enable_progress_bar: false}
callbacks: [{ModelCheckpoint: {monitor: val/accuracy, mode: max}}]
logger: false
"""


def test_keras_structured_data_recipe_trains_records_its_preprocessing_and_tests_from_the_checkpoint(tmp_path):
    write_heart(tmp_path / "heart.csv")
    (tmp_path / "heart.yaml").write_text(HEART)
    run_dir = fit_spec(load_spec(tmp_path / "heart.yaml", [f"trainer.default_root_dir={tmp_path / 'runs'}"]),
                       console=quiet()).run_dir
    columns = yaml.safe_load((run_dir / "spec.yaml").read_text())["data"]["source"]["CSV"]["columns"]
    assert columns["age"]["type"] == "numeric" and {"mean", "std"} <= set(columns["age"])
    assert columns["chol"]["fill_value"] > 200 and {"min", "max"} <= set(columns["thalach"])
    assert columns["thal"]["categories"] == ["fixed", "normal", "reversible"] and "fill_value" in columns["thal"]
    assert columns["cp"]["categories"] == ["0", "1", "2", "3"]

    # fitted on the 60% that trains, not on the whole file
    values = np.array([float(line.split(",")[0]) for line in (tmp_path / "heart.csv").read_text().splitlines()[1:]])
    assert columns["age"]["mean"] != pytest.approx(values.mean(), abs=1e-6)

    ckpt = next((run_dir / "checkpoints").glob("epoch*.ckpt"))
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(ckpt, tmp_path / "elsewhere" / "best.ckpt")
    recorded = yaml.safe_load((run_dir / "results.json").read_text())["test"]["test/accuracy"]
    tested = test_checkpoint(tmp_path / "elsewhere" / "best.ckpt", console=quiet())
    assert tested["test/accuracy"] == pytest.approx(recorded)

    # the checkpoint's spec rebuilds the preprocessing without fitting again, on a file of other values
    spec = spec_from_data(load_weights_only(ckpt)["spec"], origin=str(ckpt))
    write_heart(tmp_path / "heart.csv", seed=5)
    data = build_data(spec)
    assert spec.data.source.kwargs["columns"]["age"] == columns["age"]
    features = torch.cat([data.train.inputs, data.val.inputs, data.test.inputs])
    assert features.shape[1] == 1 + 2 + 4 + 1 + 1 + 3 + 1  # age, sex, cp, chol, thalach, thal + its indicator


def table_spec(tmp_path: Path, text: str, source: str, *, extra: str = ""):
    (tmp_path / "t.csv").write_text(text)
    (tmp_path / "t.yaml").write_text(f"""\
seed: 0
data:
  source: {{CSV: {{path: t.csv, {source}}}}}
{extra}model:
  layers: [{{Linear: {{out_features: 2}}}}]
optimizer: SGD
logger: false
""")
    return load_spec(tmp_path / "t.yaml")


def data_error(spec) -> str:
    from declarative.errors import SpecError

    with pytest.raises(SpecError) as info:
        build_data(spec)
    return str(info.value)


def test_a_missing_cell_says_which_setting_fills_it(tmp_path):
    spec = table_spec(tmp_path, "a,b,y\n1,2,0\n,3,1\n", "targets: y")
    message = data_error(spec)
    assert "t.csv:3: column 'a' has an empty field (a missing value)" in message
    assert "`columns: {a: {missing: mean}}`" in message


@pytest.mark.parametrize("missing, expected", [
    ("mean", [[1.0], [2.0], [3.0]]), ("median", [[1.0], [2.0], [3.0]]),
    ("{missing: constant, fill_value: -1}", [[1.0], [-1.0], [3.0]]),
    ("indicator", [[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]]),
])
def test_missing_values_are_filled_as_the_column_says(tmp_path, missing, expected):
    settings = missing if missing.startswith("{") else f"{{missing: {missing}}}"
    spec = table_spec(tmp_path, "a,y\n1,0\nNA,1\n3,0\n", f"targets: y, columns: {{a: {settings}}}")
    assert build_data(spec).train.inputs.tolist() == expected


def test_missing_drop_drops_the_row_and_its_target(tmp_path):
    spec = table_spec(tmp_path, "a,y\n1,0\n,1\n3,1\n", "targets: y, columns: {a: {missing: drop}}")
    data = build_data(spec)
    assert data.train.inputs.tolist() == [[1.0], [3.0]] and data.train.targets.tolist() == [0, 1]


def test_standardise_and_min_max_use_the_training_split_only(tmp_path):
    rows = "\n".join(f"{v},{v * 10},{v % 2}" for v in range(10))
    spec = table_spec(tmp_path, f"a,b,y\n{rows}\n", "targets: y, columns: {a: {scale: standard}, b: {scale: minmax}}",
                      extra="  val: {fraction: 0.2, order: last}\n")
    data = build_data(spec)
    train = data.train.inputs
    assert train[:, 0].mean().item() == pytest.approx(0, abs=1e-6) and train[:, 0].std().item() == pytest.approx(1)
    assert train[:, 1].min().item() == 0 and train[:, 1].max().item() == 1
    assert data.val.inputs[:, 1].tolist() == pytest.approx([80 / 70, 90 / 70])  # past the training maximum
    recorded = spec.to_dict()["data"]["source"]["CSV"]["columns"]
    assert recorded["a"]["mean"] == 3.5 and recorded["b"] == {"scale": "minmax", "type": "numeric", "min": 0, "max": 70}


def test_a_category_unseen_in_training_is_the_all_zero_unknown_bucket(tmp_path):
    spec = table_spec(tmp_path, "colour,y\nred,0\nblue,1\nred,0\ngreen,1\n", "targets: y",
                      extra="  val: {fraction: 0.25, order: last}\n")
    data = build_data(spec)
    assert spec.data.source.kwargs["columns"]["colour"]["categories"] == ["blue", "red"]
    assert data.val.inputs.tolist() == [[0.0, 0.0]]  # green


def test_free_text_and_identifier_columns_are_flagged_not_one_hot_encoded(tmp_path):
    names = "\n".join(f"passenger {i} of the ship,{i % 2}" for i in range(8))
    message = data_error(table_spec(tmp_path, f"name,y\n{names}\n", "targets: y"))
    assert "column 'name' looks like free text" in message and "{type: text}" in message
    ids = "\n".join(f"T{i}x,{i % 2}" for i in range(8))
    message = data_error(table_spec(tmp_path, f"ticket,y\n{ids}\n", "targets: y"))
    assert "column 'ticket' has 8 distinct values in 8 rows" in message
    assert build_data(table_spec(tmp_path, f"ticket,y\n{ids}\n",
                                 "targets: y, columns: {ticket: {type: categorical}}")).input_shape == (8,)


def test_a_csv_without_a_header_takes_the_given_names(tmp_path):
    spec = table_spec(tmp_path, "1.5,a,0\n2.5,b,1\n", "targets: y, header: false, names: [x, c, y]")
    data = build_data(spec)
    assert data.train.inputs.tolist() == [[1.5, 1, 0], [2.5, 0, 1]] and data.train.targets.tolist() == [0, 1]


def test_normalize_auto_standardises_each_feature_of_a_table(tmp_path):
    rows = "\n".join(f"{v},{v * 100},{v % 2}" for v in range(6))
    spec = table_spec(tmp_path, f"a,b,y\n{rows}\n", "targets: y", extra="  transforms: [{Normalize: {mean: auto, std: auto}}]\n")
    batch, _ = next(iter(build_data(spec).train))
    assert batch.mean(0).tolist() == pytest.approx([0, 0], abs=1e-5)
    assert spec.data.transforms[0].kwargs["mean"] == [2.5, 250.0]


def test_an_image_path_column_is_an_image_input(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((5, 4, 3), i * 50, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    spec = table_spec(tmp_path, "file,y\n0.png,0\n1.png,1\n2.png,0\n", "targets: y, columns: {file: {type: image}}")
    data = build_data(spec)
    assert data.train.inputs.shape == (3, 3, 5, 4) and data.train.inputs.dtype == torch.uint8
    assert data.train.inputs[2].float().mean().item() == 100


def test_validate_names_a_mistyped_column_setting_before_any_training(tmp_path):
    (tmp_path / "t.csv").write_text("a,y\n1,0\n")
    (tmp_path / "t.yaml").write_text("data:\n  source: {CSV: {path: t.csv, targets: y, columns: {a: {scale: zscore}}}}\n"
                                     "model: {layers: [{Linear: {out_features: 2}}]}\noptimizer: SGD\n")
    result = dtrain("validate", "t.yaml", cwd=tmp_path)
    assert result.returncode == 1 and "t.yaml:2:" in result.stderr and "zscore" in result.stderr


def validate_problems(path: Path) -> list[str]:
    """What `dtrain validate` reports for a spec file (its semantic stage reads the data that is here)."""
    return [str(p) for p in semantic_problems(load_spec(path, semantic=False), read_data=True)]


def test_validate_reads_a_table_that_is_here_and_names_what_run_would_reject(tmp_path):
    (tmp_path / "t.csv").write_text("a,note,y\n1,x,0\n,y,1\n")
    (tmp_path / "t.yaml").write_text("data:\n  source: {CSV: {path: t.csv, targets: y, columns: {note: {type: text}}}}\n"
                                     "model: {layers: [{Linear: {out_features: 2}}]}\noptimizer: SGD\n")
    problem, = validate_problems(tmp_path / "t.yaml")
    assert problem.startswith(f"{tmp_path / 't.yaml'}:2:")
    assert "column 'note' is a text column, and a text column is the table's only input" in problem
    (tmp_path / "t.yaml").write_text((tmp_path / "t.yaml").read_text().replace("{note: {type: text}}",
                                                                               "{note: {type: categorical}}"))
    problem, = validate_problems(tmp_path / "t.yaml")
    assert "t.csv:3: column 'a' has an empty field (a missing value)" in problem
    (tmp_path / "t.csv").unlink()
    assert validate_problems(tmp_path / "t.yaml") == []  # absent: the run's to report
