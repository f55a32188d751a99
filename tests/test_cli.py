"""The command line itself: help, listing what a spec can name, printing the schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dtrain(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "declarative", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_command():
    result = dtrain("--help")
    assert result.returncode == 0
    for command in ["run", "validate", "summary", "test", "schema", "layers"]:
        assert command in result.stdout


def test_layers_lists_names_arguments_and_what_is_inferred():
    result = dtrain("layers", "conv2d")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Conv2d(in_channels*, out_channels!, kernel_size!, stride, padding,")
    assert len(result.stdout.splitlines()) == 1  # piped: one line per entry
    optimizers = dtrain("layers", "--kind", "optimizer").stdout.splitlines()
    assert any(line.startswith("AdamW(lr, betas,") for line in optimizers)


def test_layers_with_an_unknown_kind_is_a_usage_error():
    result = dtrain("layers", "--kind", "metrc")
    assert result.returncode == 2
    assert "did you mean 'metric'" in result.stderr


def test_schema_command_prints_the_schema_and_writes_a_file(tmp_path):
    printed = dtrain("schema")
    assert printed.returncode == 0
    schema = json.loads(printed.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert dtrain("schema", "-o", str(tmp_path / "s.json")).returncode == 0
    assert (tmp_path / "s.json").read_text() == printed.stdout


def test_unknown_command_is_a_usage_error():
    result = dtrain("trian", "x.yaml")
    assert result.returncode == 2
