"""Resume: a run killed at random moments and resumed each time ends exactly where a run that never stopped ends.

Every run is the real `dtrain` command in a subprocess. The spec has what makes exactness hard:
dropout, train-only augmentation (random crops and flips), momentum and a per-step LR schedule, a
checkpoint after every step. Kills land mid-epoch and in the middle of a checkpoint's save (a
`.tmp` file left behind shows it); the final weights must be `torch.equal` to the straight run's and
metrics.csv must have the same rows.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from declarative.training.checkpoint import load_checkpoint

TIMEOUT = 120

SPEC = """\
name: tiny
seed: 5
data:
  source: {ArrayFile: {path: data.npz}}
  val: {fraction: 0.25}
  train_transforms: [{RandomCrop: {size: 8, padding: 1}}, RandomHorizontalFlip]
  batch_size: 8
model:
  input: [1, 8, 8]
  layers:
    - Flatten
    - Linear: {out_features: 16}
    - ReLU
    - Dropout: {p: 0.3}
    - Linear: {out_features: 3}
loss: CrossEntropyLoss
metrics: [accuracy]
optimizer: {SGD: {lr: 0.1, momentum: 0.9}}
scheduler: {StepLR: {step_size: 2, gamma: 0.8}, interval: step}
callbacks:
  - ModelCheckpoint: {every_n_train_steps: 1, save_last: true, save_top_k: 0}
  - EarlyStopping: {monitor: val/loss, patience: 5}
  - OnExceptionCheckpoint
trainer:
  max_epochs: 3
  accelerator: cpu
  log_every_n_steps: 1
  enable_progress_bar: false
  deterministic: true
"""
STEPS = 18  # 48 training samples in batches of 8: 6 steps an epoch, 3 epochs


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def dtrain(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "declarative", *args], cwd=folder, capture_output=True, text=True,
                          timeout=TIMEOUT, env=env())


def setup(folder: Path, *, spec: str = SPEC) -> Path:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(64, 1, 8, 8)).astype(np.float32)
    targets = inputs.reshape(64, -1)[:, :3].argmax(1).astype(np.int64)
    np.savez(folder / "data.npz", inputs=inputs, targets=targets)
    (folder / "spec.yaml").write_text(spec)
    return folder


def run_folder(folder: Path, version: int) -> Path:
    return folder / "runs" / "tiny" / f"version_{version}"


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]


def assert_same_run(resumed: Path, straight: Path) -> None:
    a, b = final_weights(resumed), final_weights(straight)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (resumed / "metrics.csv").read_text() == (straight / "metrics.csv").read_text()
    assert json.loads((resumed / "results.json").read_text())["status"] == "success"


def tensorboard_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Each scalar's (step, value) pairs as TensorBoard shows them (what a resume purged left out)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def csv_lines(run: Path) -> int:
    try:
        with open(run / "metrics.csv", "rb") as file:
            return file.read().count(b"\n")
    except FileNotFoundError:
        return 0


def saving(run: Path) -> bool:
    """A checkpoint is being written: its temporary file exists."""
    try:
        return any(name.endswith(".tmp") for name in os.listdir(run / "checkpoints"))
    except FileNotFoundError:
        return False


def stop_when(args: list[str], folder: Path, run: Path, moment, sig: int) -> tuple[int, str]:
    """Start `dtrain *args`; send `sig` as soon as `moment(run)` holds; its exit code and stderr."""
    process = subprocess.Popen([sys.executable, "-m", "declarative", *args], cwd=folder, env=env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT
    while process.poll() is None and time.monotonic() < deadline:
        if moment(run):
            for pid in ([process.pid, *descendants(process.pid)] if sig == signal.SIGKILL else [process.pid]):
                os.kill(pid, sig)  # SIGKILL: a launcher's workers too (they run in sessions of their own)
            break
        time.sleep(0.0005)
    _, stderr = process.communicate(timeout=TIMEOUT)
    return process.returncode, stderr


def saving_again(run: Path) -> bool:
    """A checkpoint is being written, and an earlier one is whole (a resume needs one)."""
    return saving(run) and any((run / "checkpoints").glob("*.ckpt"))


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (from /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as file:
                    parents[int(entry)] = int(file.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def after_rows(count: int):
    return lambda run: csv_lines(run) > count


def resumes_recorded(run: Path) -> int:
    try:
        return len(json.loads((run / "resumes.json").read_text()))
    except (FileNotFoundError, ValueError):  # none yet, or being written
        return 0


def once_resumed(moment, resumes: int):
    """`moment`, once the process has recorded the run's `resumes`-th resume: a stale metrics.csv or checkpoint of
    the process before (killed late on a loaded machine) must not stop this one before it has even begun."""
    return lambda run: resumes_recorded(run) >= resumes and moment(run)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """The run folder of the spec trained for 3 epochs without a stop."""
    folder = setup(tmp_path_factory.mktemp("straight"))
    done = dtrain(folder, "run", "spec.yaml")
    assert done.returncode == 0, done.stderr
    return run_folder(folder, 0)


def kill_and_resume(folder: Path, overrides: list[str], kills: int = 6) -> Path:
    """Train, SIGKILL mid-epoch and mid-save (`kills` times), resume with --resume after each; the run folder."""
    setup(folder)
    run = run_folder(folder, 0)
    moments = [after_rows(3), saving, after_rows(9), saving, after_rows(14), saving][:kills]
    mid_save = 0
    for index, moment in enumerate(moments):
        resume = [] if index == 0 else ["--resume", str(run) if index % 2 else "last"]
        code, stderr = stop_when(["run", "spec.yaml", *overrides, *resume], folder, run, once_resumed(moment, index),
                                 signal.SIGKILL)
        assert code == -signal.SIGKILL, stderr
        mid_save += any(p.name.endswith(".tmp") for p in (run / "checkpoints").iterdir())
        for leftover in (run / "checkpoints").glob(".*.tmp"):
            leftover.unlink()  # what a killed save leaves; the good checkpoint beside it is whole
    assert mid_save >= 1  # at least one kill landed inside a save
    done = dtrain(folder, "run", "spec.yaml", *overrides, "--resume", "last")
    assert done.returncode == 0, done.stderr
    resumes = json.loads((run / "resumes.json").read_text())
    assert len(resumes) == len(moments)
    assert all(r["checkpoint"].endswith("last.ckpt") for r in resumes)
    return run


def test_a_run_killed_mid_epoch_and_mid_save_and_resumed_ends_as_a_straight_run(straight, tmp_path):
    assert_same_run(kill_and_resume(tmp_path, []), straight)


def test_killed_and_resumed_through_a_dataloader_with_workers(straight, tmp_path):
    assert_same_run(kill_and_resume(tmp_path, ["data.loader=dataloader", "data.num_workers=1"], kills=3), straight)


def test_sigterm_saves_at_the_next_step_and_prints_the_command_that_resumes(straight, tmp_path):
    setup(tmp_path)
    run = run_folder(tmp_path, 0)
    for index, moment in enumerate([after_rows(2), after_rows(9), after_rows(16)]):
        args = ["run", "spec.yaml"] if index == 0 else ["resume", str(run)]
        code, stderr = stop_when(args, tmp_path, run, once_resumed(moment, index), signal.SIGTERM)
        assert code == 128 + signal.SIGTERM, stderr
        assert f"resume with: dtrain resume {run}" in stderr
        assert load_checkpoint(run / "checkpoints" / "interrupted.ckpt")["loop"]["global_step"] > 0
        assert load_checkpoint(run / "checkpoints" / "on_exception.ckpt")["loop"]  # OnExceptionCheckpoint's resumes too
        assert json.loads((run / "results.json").read_text())["status"] == "interrupted"
    done = dtrain(tmp_path, "resume", str(run))
    assert done.returncode == 0, done.stderr
    assert_same_run(run, straight)
    assert tensorboard_scalars(run) == tensorboard_scalars(straight)  # each step once, at the same values


def test_resuming_with_a_changed_learning_rate_is_a_located_error(straight, tmp_path):
    setup(tmp_path)
    run = run_folder(tmp_path, 0)
    shutil.copytree(straight, run)
    (tmp_path / "faster.yaml").write_text(SPEC.replace("lr: 0.1", "lr: 0.2"))
    changed = dtrain(tmp_path, "run", "faster.yaml", "--resume", str(run))
    assert changed.returncode == 1
    message = changed.stderr.strip()
    assert message.startswith("faster.yaml:18:23: ")  # where the spec sets the rate
    assert "optimizer.SGD.lr (0.1 in the checkpoint, 0.2 now)" in message
    overridden = dtrain(tmp_path, "resume", str(run), "optimizer.SGD.lr=0.2")
    assert overridden.returncode == 1
    assert "override 'optimizer.SGD.lr=0.2'" in overridden.stderr and "optimizer.SGD.lr" in overridden.stderr
    assert "Traceback" not in changed.stderr + overridden.stderr
    more = dtrain(tmp_path, "resume", str(run), "trainer.max_epochs=4")  # a longer run is a change a resume may make
    assert more.returncode == 0, more.stderr
    assert json.loads((run / "results.json").read_text())["epochs"] == 4


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_a_two_process_run_killed_stopped_and_resumed_ends_as_its_straight_run(tmp_path):
    """2 processes (gloo on the CPU): SIGKILL to all of them mid-save, then SIGTERM to the launcher."""
    two = ["trainer.devices=2"]
    straight = setup(tmp_path / "straight")
    done = dtrain(straight, "run", "spec.yaml", *two)
    assert done.returncode == 0, done.stderr
    folder = setup(tmp_path / "stopped")
    run = run_folder(folder, 0)
    # 3 steps an epoch here (batches of 8 on each of 2 processes); metrics.csv has 13 lines at the end.
    for index, (moment, sig) in enumerate([(saving_again, signal.SIGKILL), (after_rows(8), signal.SIGTERM)]):
        resume = [] if index == 0 else ["--resume", "last"]
        code, stderr = stop_when(["run", "spec.yaml", *two, *resume], folder, run, moment, sig)
        assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + signal.SIGTERM), (index, stderr)
    assert f"resume with: dtrain resume {run}" in stderr
    done = dtrain(folder, "resume", str(run))
    assert done.returncode == 0, done.stderr
    assert_same_run(run, run_folder(straight, 0))


def test_a_run_with_an_exponential_moving_average_resumes_exactly(tmp_path):
    """EMAWeightAveraging: the checkpoint's weights are the average; a resume trains on the real ones."""
    spec = SPEC.replace("  - OnExceptionCheckpoint\n", "  - EMAWeightAveraging: {decay: 0.9}\n")
    straight, stopped = setup(tmp_path / "straight", spec=spec), setup(tmp_path / "stopped", spec=spec)
    assert dtrain(straight, "run", "spec.yaml").returncode == 0
    first = dtrain(stopped, "run", "spec.yaml", "trainer.max_steps=8")
    assert first.returncode == 0, first.stderr
    done = dtrain(stopped, "resume", str(run_folder(stopped, 0)), "trainer.max_steps=null")
    assert done.returncode == 0, done.stderr
    assert_same_run(run_folder(stopped, 0), run_folder(straight, 0))
