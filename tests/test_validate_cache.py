"""`dtrain validate` remembers each spec's outcome: an unchanged spec is answered without importing torch,
and a change to the spec, to a data file it names or `--no-cache` checks it again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

# Runs `dtrain validate ARGS...` and then prints whether torch was imported: a remembered outcome needs none.
VALIDATE_AND_TELL = """
import sys
from declarative.cli import app
try:
    app(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print("torch imported" if "torch" in sys.modules else "torch not imported")
sys.exit(code)
"""

SPEC = """\
name: cached
data:
  source: {ArrayFile: {path: arrays.npz}}
  val: {fraction: 0.2}
  batch_size: 8
model:
  input: auto
  layers:
    - Linear: {out_features: 16}
    - ReLU
    - Linear: {out_features: "${data.num_classes}"}
optimizer:
  Adam: {lr: 1.0e-3}
"""


def _arrays(path: Path, classes: int) -> None:
    rng = np.random.default_rng(0)
    np.savez(path, inputs=rng.normal(size=(40, 6)).astype(np.float32), targets=np.arange(40) % classes)


def _validate(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DTRAIN_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-c", VALIDATE_AND_TELL, "validate", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_an_unchanged_spec_is_answered_from_the_cache_and_a_change_checks_it_again(tmp_path):
    spec, cache = tmp_path / "spec.yaml", tmp_path / "cache"
    spec.write_text(SPEC)
    _arrays(tmp_path / "arrays.npz", classes=3)

    first = _validate(cache, str(spec))
    assert first.returncode == 0, first.stderr
    assert "torch imported" in first.stdout
    again = _validate(cache, str(spec))
    assert (again.returncode, again.stderr) == (0, "")
    assert "torch not imported" in again.stdout
    assert len(list((cache / "validate").glob("*.json"))) == 1

    # A data file the spec names changes: checked again (the class count is read from it).
    _arrays(tmp_path / "arrays.npz", classes=5)
    assert "torch imported" in _validate(cache, str(spec)).stdout

    # The spec changes: checked again, and its problem, located, is replayed word for word next time.
    spec.write_text(SPEC.replace("out_features: 16", "out_feature: 16"))
    broken = _validate(cache, str(spec))
    assert broken.returncode == 1
    assert f"{spec}:9:16:" in broken.stderr and "out_feature" in broken.stderr
    replayed = _validate(cache, str(spec))
    assert (replayed.returncode, replayed.stderr) == (1, broken.stderr)
    assert "torch not imported" in replayed.stdout
    # The `dtrain` command answers it before even the command-line library loads.
    command = subprocess.run([sys.executable, "-X", "importtime", "-m", "declarative", "validate", str(spec)],
                             capture_output=True, text=True, env={**os.environ, "DTRAIN_CACHE_DIR": str(cache)}, timeout=300)
    assert command.returncode == 1 and broken.stderr in command.stderr
    assert "typer" not in command.stderr and "| torch" not in command.stderr

    # --no-cache checks it again anyway.
    spec.write_text(SPEC)
    _validate(cache, str(spec))
    assert "torch imported" in _validate(cache, "--no-cache", str(spec)).stdout


# Each writer puts its own outcome under one key again and again while the test reads it.
WRITER = """
import sys
from declarative.spec.validate_cache import Outcome, ValidateCache
cache = ValidateCache("full")
for i in range(300):
    cache.put("k", Outcome(lines=[sys.argv[1] * 2000], failed=True))
"""


def test_two_runs_writing_the_cache_at_once_leave_whole_entries(tmp_path):
    env = {**os.environ, "DTRAIN_CACHE_DIR": str(tmp_path)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, word], env=env) for word in ("a", "b")]
    entry = tmp_path / "validate" / "k.json"
    seen = set()
    while any(w.poll() is None for w in writers):
        if entry.exists():
            seen.add(json.loads(entry.read_text())["lines"][0][:1])  # always whole JSON, never a mix
    assert all(w.wait(timeout=60) == 0 for w in writers)
    assert seen <= {"a", "b"} and seen
    assert [p.name for p in entry.parent.iterdir()] == ["k.json"]  # no temporary files left behind


def test_the_cache_folder_follows_the_platform_convention(monkeypatch, tmp_path):
    from declarative.spec.validate_cache import cache_dir

    monkeypatch.delenv("DTRAIN_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "dtrain"
    monkeypatch.setenv("DTRAIN_CACHE_DIR", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own"
