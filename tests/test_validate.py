"""`dtrain validate`: every problem a user can make is one located line and exit 1."""

from __future__ import annotations

import subprocess
import sys

import pytest

from specs import mlp_text, write_spec

# (what the user did wrong, the line of the spec to replace, its replacement, expected file:line:col, message part)
MISTAKES = [
    ("misspelt layer", "    - ReLU\n", "    - Relu\n", ":14:7:", "unknown layer 'Relu' — did you mean 'ReLU'"),
    ("misspelt argument", "    - Linear: {out_features: 32}\n", "    - Linear: {out_featurs: 32}\n", ":13:16:",
     "Linear has no argument 'out_featurs' — did you mean 'out_features'"),
    ("value of the wrong type", "    - Linear: {out_features: 32}\n", "    - Linear: {out_features: many}\n", ":13:30:",
     "out_features must be an integer >= 1, got 'many'"),
    ("negative learning rate", "optimizer: {Adam: {lr: 1.0e-2}}\n", "optimizer: {Adam: {lr: -0.1}}\n", ":18:24:",
     "lr must be >= 0, got -0.1"),
    ("YAML syntax error", "metrics: [accuracy]\n", "metrics: [accuracy\n", ":18:", "YAML syntax error"),
    ("unknown top-level key", "metrics: [accuracy]\n", "metrics: [accuracy]\nepochs: 3\n", ":18:1:",
     "unknown key 'epochs' in the spec"),
    ("explicit in_features that disagrees", "    - Linear: {out_features: 10}\n",
     "    - Linear: {in_features: 64, out_features: 10}\n", ":15:29:",
     "in_features=64 disagrees with the input of layer 3 (Linear), shape [N, 32], which gives in_features=32"),
    ("unknown optimizer", "optimizer: {Adam: {lr: 1.0e-2}}\n", "optimizer: {Adamw: {lr: 1.0e-2}}\n", ":18:13:",
     "unknown optimizer 'Adamw' — did you mean 'AdamW'"),
    ("bad choice", "trainer: {max_epochs: 2, enable_progress_bar: false}\n", "trainer: {precision: fp16}\n", ":19:22:",
     "precision must be one of '32-true'"),
    ("layer that cannot take its input", "    - Flatten\n", "    - Conv2d: {out_channels: 4, kernel_size: 9}\n",
     ":12:7:", "layer 0 (Conv2d) cannot take its input of shape [N, 1, 8, 8]"),
    ("monitor that is never logged", "trainer: {max_epochs: 2, enable_progress_bar: false}\n",
     "trainer: {max_epochs: 2}\ncallbacks: [{EarlyStopping: {monitor: val/acc}}]\n", ":20:39:",
     "monitor 'val/acc' is not a metric this run logs"),
]


def dtrain(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "declarative", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_valid_specs_pass_quietly(tmp_path):
    result = dtrain("validate", str(write_spec(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


def test_every_mistake_is_one_located_line_and_exit_1(tmp_path):
    """All mistakes in one call, as pre-commit runs it: one line each, no traceback."""
    files = []
    for i, (_, old, new, _, _) in enumerate(MISTAKES):
        assert old in mlp_text()
        files.append(write_spec(tmp_path, mlp_text().replace(old, new), name=f"bad{i}.yaml"))
    files.append(write_spec(tmp_path, name="good.yaml"))
    result = dtrain("validate", *map(str, files))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    for i, (what, _, _, where, message) in enumerate(MISTAKES):
        mine = [line for line in lines if line.startswith(str(files[i]) + ":")]
        assert len(mine) == 1, f"{what}: expected one line, got {mine}"
        assert where in mine[0] and message in mine[0], f"{what}: {mine[0]}"
    assert not any(str(files[-1]) in line for line in lines)


def test_override_errors_name_the_override(tmp_path):
    spec = write_spec(tmp_path)
    result = dtrain("run", str(spec), "trainer.max_epochs=abc", "--print-spec")
    assert result.returncode == 1
    assert result.stderr.strip() == (f"{spec}: override 'trainer.max_epochs=abc': "
                                     "max_epochs must be an integer >= 1 or -1 or null, got 'abc'")


def test_malformed_override_is_a_usage_error(tmp_path):
    result = dtrain("run", str(write_spec(tmp_path)), "trainer.max_epochs", "--print-spec")
    assert result.returncode == 2
    assert "expected key.path=value" in result.stderr and "Traceback" not in result.stderr


def test_missing_file_and_folder(tmp_path):
    result = dtrain("validate", str(tmp_path / "absent.yaml"), str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path / 'absent.yaml'}: no such file" in result.stderr
    assert f"{tmp_path}: is a folder" in result.stderr


@pytest.mark.parametrize("section", ["data", "model", "optimizer"])
def test_required_sections(tmp_path, section):
    from declarative.spec.document import load_text
    from declarative.spec.validate import schema_problems

    doc = load_text(mlp_text("d.npz"), "s.yaml")
    del doc.data[section]
    assert [str(p) for p in schema_problems(doc)] == [f"s.yaml:1:1: the spec needs the key '{section}'"]
