"""Signals and leftovers: SIGTERM ends a run as Ctrl-C does, and what a save killed mid-write leaves is
removed by the next run in that folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from declarative.cli import app
from declarative.training.checkpoint import _HOST, remove_stale_temps

LONG_RUN = """\
name: long
seed: 0
data:
  source: {Synthetic: {shape: [8], size: 64, num_classes: 3}}
  batch_size: 16
model:
  input: [8]
  layers: [{Linear: {out_features: 3}}]
optimizer: {SGD: {lr: 0.1}}
trainer: {max_epochs: 100000, enable_progress_bar: false}
logger: false
"""

SHORT_RUN = LONG_RUN.replace("max_epochs: 100000", "max_epochs: 1").replace("name: long", "name: short")


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


@pytest.mark.parametrize("sent, code, says", [
    (signal.SIGTERM, 143, "stopped by SIGTERM at epoch "),
    (signal.SIGINT, 130, "stopped by SIGINT at epoch "),  # Ctrl-C
], ids=["SIGTERM", "SIGINT"])
def test_sigterm_ends_a_run_as_ctrl_c_does_keeping_its_checkpoints(tmp_path, sent, code, says):
    (tmp_path / "long.yaml").write_text(LONG_RUN)
    process = subprocess.Popen([sys.executable, "-m", "declarative", "run", "long.yaml"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               # a shell's background job starts with SIGINT ignored; Ctrl-C's is what is tested
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        last = tmp_path / "runs" / "long" / "version_0" / "checkpoints" / "last.ckpt"
        _wait_for(last, process)
        process.send_signal(sent)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code
    assert "Traceback" not in stdout + stderr
    # In training, the run stops at the next step boundary with a checkpoint that resumes it (docs/resume.md).
    assert stderr.startswith(says)
    assert f"resume with: dtrain resume {last.parent.parent}" in stderr
    assert last.exists() and (last.parent / "interrupted.ckpt").exists()
    assert not [p.name for p in last.parent.iterdir() if p.name.endswith(".tmp")]


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          timeout=60)
    return int(done.stdout)


def test_a_save_killed_mid_write_leaves_a_temp_file_the_next_sweep_removes(tmp_path):
    """kill -9 in the middle of a save: no cleanup runs (os._exit is what a SIGKILL leaves), the temp file stays
    beside the checkpoint; the sweep a run makes of that folder removes it."""
    killed = ("import os, sys; from declarative.training.checkpoint import atomic_write\n"
              "def write(f):\n    f.write(b'partial'); f.flush(); os._exit(9)\n"
              f"atomic_write({str(tmp_path / 'last.ckpt')!r}, write)\n")
    subprocess.run([sys.executable, "-c", killed], timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    left = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and left[0].name.startswith(".last.ckpt.") and not (tmp_path / "last.ckpt").exists()
    assert remove_stale_temps(tmp_path) == left
    assert not list(tmp_path.iterdir())


def test_the_next_run_removes_stale_temps_of_earlier_runs_and_leaves_live_ones(tmp_path, monkeypatch):
    (tmp_path / "short.yaml").write_text(SHORT_RUN)
    earlier = tmp_path / "runs" / "short" / "version_0"
    (earlier / "checkpoints").mkdir(parents=True)
    stale = earlier / "checkpoints" / f".last.ckpt.{_HOST}-{_dead_pid()}.0123abcd.tmp"
    stale_results = earlier / f".results.json.{_HOST}-{_dead_pid()}.89abcdef.tmp"
    live = earlier / "checkpoints" / f".epoch=3.ckpt.{_HOST}-{os.getpid()}.deadbeef.tmp"  # a save in progress
    elsewhere = earlier / "checkpoints" / f".last.ckpt.otherhost-{_dead_pid()}.00000000.tmp"  # another machine's
    for path in (stale, stale_results, live, elsewhere):
        path.write_bytes(b"partial")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "short.yaml"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert not stale.exists() and not stale_results.exists()
    assert live.exists() and elsewhere.exists()
    assert (tmp_path / "runs" / "short" / "version_1" / "checkpoints" / "last.ckpt").exists()


def test_a_shared_checkpoint_folder_is_swept_when_a_run_starts_saving_there(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    stale = shared / f".best.ckpt.{_HOST}-{_dead_pid()}.0123abcd.tmp"
    stale.write_bytes(b"partial")
    (tmp_path / "short.yaml").write_text(SHORT_RUN + f"callbacks: [{{ModelCheckpoint: {{dirpath: {shared}}}}}]\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "short.yaml"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert not stale.exists()
    assert [p.name for p in shared.iterdir()] == ["epoch=0-step=4.ckpt"]
