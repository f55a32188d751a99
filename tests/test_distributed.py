"""Several processes: `dtrain run ... trainer.devices=2` on the CPU (gloo), torchrun "nodes", FSDP, faults.

Every run here is a real `dtrain` command in a subprocess, started the way a user starts it; the
processes are real torch.distributed processes talking over gloo on this machine.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from declarative.errors import SpecError
from declarative.training.checkpoint import load_checkpoint
from declarative.training.environments import detect_environment, slurm_hosts
from trainer_specs import BASE, make_spec, write_data

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")

TIMEOUT = 300


def dtrain(folder: Path, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "declarative", *args], cwd=folder, capture_output=True, text=True,
                          timeout=timeout, env=env)


def setup(folder: Path, text: str = BASE) -> Path:
    write_data(folder / "data.npz")
    (folder / "spec.yaml").write_text(text)
    return folder / "spec.yaml"


def run_folder(folder: Path, version: int = 0) -> Path:
    return folder / "runs" / "tiny" / f"version_{version}"


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]


def metric_rows(run: Path) -> list[dict[str, float]]:
    with open(run / "metrics.csv") as file:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(file)]


def assert_same_rows(a: list[dict[str, float]], b: list[dict[str, float]]) -> None:
    assert [sorted(r) for r in a] == [sorted(r) for r in b]
    for row_a, row_b in zip(a, b):
        for key in row_a:
            assert row_a[key] == pytest.approx(row_b[key], rel=1e-5, abs=1e-6), key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# SGD, no dropout: two processes with batch 8 each take the very steps one process takes with batch 16.
EQUAL = ["trainer.accelerator=cpu", "trainer.log_every_n_steps=1", "seed=3"]


@pytest.fixture(scope="module")
def two_and_one(tmp_path_factory) -> tuple[Path, Path]:
    """One spec trained by 2 processes (batch 8 each) and by 1 process (batch 16)."""
    folder = tmp_path_factory.mktemp("ddp")
    setup(folder)
    two = dtrain(folder, "run", "spec.yaml", *EQUAL, "trainer.devices=2", "data.batch_size=8",
                 "callbacks=[{ModelCheckpoint: {monitor: val/loss, save_last: true}}]")
    assert two.returncode == 0, two.stderr
    one = dtrain(folder, "run", "spec.yaml", *EQUAL, "trainer.devices=1", "data.batch_size=16",
                 "callbacks=[{ModelCheckpoint: {monitor: val/loss, save_last: true}}]")
    assert one.returncode == 0, one.stderr
    return run_folder(folder, 0), run_folder(folder, 1)


def test_two_processes_train_the_weights_one_process_trains_with_twice_the_batch(two_and_one):
    two, one = two_and_one
    a, b = weights(two), weights(one)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    results = json.loads((two / "results.json").read_text())
    assert results["world_size"] == 2 and results["status"] == "success"


def test_two_processes_log_the_metrics_one_process_logs(two_and_one):
    """Metric sums are all-reduced: 2-process val/accuracy is the 1-process value on the same data."""
    two, one = two_and_one
    assert_same_rows(metric_rows(two), metric_rows(one))
    assert json.loads((two / "results.json").read_text())["val"] == pytest.approx(
        json.loads((one / "results.json").read_text())["val"], rel=1e-6)


def test_only_process_zero_writes_the_run_folder(two_and_one):
    two, _ = two_and_one
    assert sorted(p.name for p in two.parent.iterdir()) == ["version_0", "version_1"]  # one folder per run
    assert len(list(two.glob("events.out.tfevents.*"))) == 1


def test_the_best_checkpoint_of_a_two_process_run_tests_alone_in_one_process(two_and_one, tmp_path):
    two, _ = two_and_one
    results = json.loads((two / "results.json").read_text())
    best = results["best_model_path"]
    assert best and Path(best).exists()
    tested = dtrain(tmp_path, "test", best)
    assert tested.returncode == 0, tested.stderr
    shown = {line.split()[0]: float(line.split()[1]) for line in tested.stdout.splitlines()
             if line.strip().startswith("test/")}
    assert shown["test/accuracy"] == pytest.approx(results["test"]["test/accuracy"], abs=5e-5)
    assert shown["test/loss"] == pytest.approx(results["test"]["test/loss"], abs=5e-5)


def test_two_torchrun_nodes_train_what_two_local_processes_train(two_and_one, tmp_path):
    """`torchrun --nnodes=2` on each machine (here both on localhost): dtrain reads the launcher's variables."""
    two, _ = two_and_one
    setup(tmp_path)
    port = free_port()
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={rank}", "--nproc-per-node=1",
         "--master-addr=127.0.0.1", f"--master-port={port}", "-m", "declarative", "run", "spec.yaml", *EQUAL,
         "trainer.num_nodes=2", "data.batch_size=8",
         "callbacks=[{ModelCheckpoint: {monitor: val/loss, save_last: true}}]"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"}) for rank in (0, 1)]
    outputs = [node.communicate(timeout=TIMEOUT) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    a, b = weights(run_folder(tmp_path)), weights(two)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_fsdp_on_two_cpu_processes_agrees_with_ddp(two_and_one, tmp_path):
    two, _ = two_and_one
    setup(tmp_path)
    fsdp = dtrain(tmp_path, "run", "spec.yaml", *EQUAL, "trainer.devices=2", "trainer.strategy=fsdp",
                  "data.batch_size=8", "callbacks=[{ModelCheckpoint: {monitor: val/loss, save_last: true}}]")
    assert fsdp.returncode == 0, fsdp.stderr
    a, b = weights(run_folder(tmp_path)), weights(two)
    assert a.keys() == b.keys()  # a full state dict, under the model's own names
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    assert_same_rows(metric_rows(run_folder(tmp_path)), metric_rows(two))


def test_a_located_error_on_every_process_is_shown_once(tmp_path):
    setup(tmp_path)
    result = dtrain(tmp_path, "run", "spec.yaml", "trainer.accelerator=cpu", "trainer.devices=2",
                    "loss={CrossEntropyLoss: {weight: [1.0, 2.0]}}")  # 2 class weights for 3 classes
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "override 'loss=" in lines[0] and "sanity check" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_sync_batchnorm_on_cpu_processes_is_a_located_error_before_training(tmp_path):
    setup(tmp_path, BASE.replace("    - ReLU\n", "    - BatchNorm1d\n    - ReLU\n"))
    result = dtrain(tmp_path, "run", "spec.yaml", "trainer.accelerator=cpu", "trainer.devices=2",
                    "trainer.sync_batchnorm=true")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "override 'trainer.sync_batchnorm=true': sync_batchnorm needs GPUs" in lines[0], \
        result.stderr
    assert not list((tmp_path / "runs").glob("*/version_*/checkpoints/*.ckpt"))  # nothing trained


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _rank_of(pid: int) -> str | None:
    try:
        env = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    return next((item.split(b"=", 1)[1].decode() for item in env if item.startswith(b"RANK=")), None)


def _interrupt_training(folder: Path, interrupt) -> tuple[subprocess.Popen, str, float]:
    """Start a long 2-process run, wait until both processes train, call `interrupt(launcher, ranks)`;
    the launcher, its stderr, and the seconds it took to end after the interrupt."""
    setup(folder)
    write_data(folder / "data.npz", n=4000)
    command = [sys.executable, "-m", "declarative", "run", "spec.yaml", "trainer.accelerator=cpu", "trainer.devices=2",
               "trainer.max_epochs=1000", "data.batch_size=4"]
    launcher = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        ranks: dict = {}
        while time.monotonic() < deadline:  # until both processes train
            ranks = {_rank_of(pid): pid for pid in _children(launcher.pid)}
            if (run_folder(folder) / "metrics.csv").exists() and {"0", "1"} <= set(ranks):
                break
            time.sleep(0.2)
        assert {"0", "1"} <= set(ranks), "the run never started training"
        time.sleep(1.0)
        start = time.monotonic()
        interrupt(launcher, ranks)
        _, stderr = launcher.communicate(timeout=60)
        return launcher, stderr, time.monotonic() - start
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the rank processes through /proc")
def test_a_rank_killed_mid_epoch_ends_the_whole_run_with_one_message(tmp_path):
    launcher, stderr, took = _interrupt_training(tmp_path, lambda _, ranks: os.kill(ranks["1"], signal.SIGKILL))
    assert launcher.returncode != 0
    assert took < 30
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "process 1" in lines[0] and "killed by SIGKILL" in lines[0], stderr
    assert "Traceback" not in stderr


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the rank processes through /proc")
def test_ctrl_c_ends_every_process(tmp_path):
    """Ctrl-C in a terminal sends SIGINT to the foreground process group: the launcher and its processes."""
    launcher, stderr, took = _interrupt_training(tmp_path, lambda launcher, _: os.killpg(launcher.pid, signal.SIGINT))
    assert launcher.returncode == 130 and took < 30
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and lines[-1].startswith("interrupted"), stderr
    # process 0 saved where training stopped and says how to go on, once (docs/resume.md)
    assert [line.startswith("resume with: dtrain resume") for line in lines].count(True) <= 1, stderr
    assert not _children(launcher.pid)


def test_strategies_are_listed_with_their_torch_arguments(tmp_path):
    listed = dtrain(tmp_path, "layers", "--kind", "strategy")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split("(")[0]: line for line in listed.stdout.splitlines()}
    assert set(lines) == {"ddp", "fsdp", "single_device", "xla"}
    assert "find_unused_parameters" in lines["ddp"] and "auto_wrap" in lines["fsdp"]


def test_strategy_arguments_are_checked_by_the_schema(tmp_path):
    with pytest.raises(SpecError, match="find_unused_parameter"):
        make_spec(tmp_path, "trainer.strategy={ddp: {find_unused_parameter: true}}")
    spec = make_spec(tmp_path, "trainer.strategy={ddp: {find_unused_parameters: true, static_graph: false}}")
    assert (spec.trainer.strategy_name, spec.trainer.strategy_kwargs["find_unused_parameters"]) == ("ddp", True)


@pytest.mark.skipif(__import__("importlib").util.find_spec("torch_xla") is None,
                    reason="torch_xla is not installed (pip install 'dtrain[xla]', which pins its own torch); "
                           "scripts/check_xla.sh checks the XLA path in a venv of its own")
def test_xla_trains_on_the_cpu_runtime(tmp_path):
    setup(tmp_path)
    result = subprocess.run([sys.executable, "-m", "declarative", "run", "spec.yaml", "trainer.accelerator=tpu",
                             "trainer.max_epochs=1"], cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT,
                            env={**os.environ, "PJRT_DEVICE": "CPU"})
    assert result.returncode == 0, result.stderr
    assert "data: in memory on xla" in result.stdout


def test_more_devices_than_the_machine_has_is_a_located_error(tmp_path, monkeypatch):
    from declarative.assembly.plugins import plan_processes

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    spec = make_spec(tmp_path, "trainer.accelerator=cuda", "trainer.devices=4")
    with pytest.raises(SpecError) as caught:
        plan_processes(spec)
    assert "override 'trainer.devices=4'" in str(caught.value)
    assert "asks for 4 cuda devices, but this machine has 2 cuda devices" in str(caught.value)
    assert plan_processes(make_spec(tmp_path, "trainer.accelerator=cuda", "trainer.devices=-1")).processes == 2


def test_a_launcher_that_started_other_counts_than_the_spec_asks_is_a_located_error(tmp_path):
    from declarative.assembly.plugins import plan_processes

    env = {"RANK": "0", "WORLD_SIZE": "4", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "h",
           "MASTER_PORT": "29500"}
    with pytest.raises(SpecError, match=r"torchrun started 4 processes, but the spec asks for num_nodes × devices"):
        plan_processes(make_spec(tmp_path, "trainer.accelerator=cpu"), detect_environment(env))
    plan = plan_processes(make_spec(tmp_path, "trainer.accelerator=cpu", "trainer.num_nodes=2"),
                          detect_environment(env))
    assert (plan.processes, plan.strategy_name, plan.needs_launch) == (4, "ddp", False)


def test_slurm_tasks_know_their_rank_and_the_first_host():
    env = {"SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
           "SLURM_NNODES": "2", "SLURM_NODELIST": "gpu[07-08]", "SLURM_JOB_ID": "123456", "SLURM_JOB_NAME": "train"}
    environment = detect_environment(env)
    assert (environment.source, environment.world_size, environment.global_rank, environment.local_rank) == \
        ("slurm", 8, 5, 1)
    assert (environment.local_world_size, environment.node_rank) == (4, 1)
    assert (environment.main_address, environment.main_port) == ("gpu07", 15000 + 3456)
    assert slurm_hosts("node[01-03,07],login5") == ["node01", "node02", "node03", "node07", "login5"]
    assert detect_environment({**env, "SLURM_JOB_NAME": "bash"}) is None  # an interactive allocation


def test_an_fsdp_run_resumes_to_the_weights_of_a_straight_run(tmp_path):
    setup(tmp_path)
    fsdp = [*EQUAL, "trainer.devices=2", "trainer.strategy=fsdp", "data.batch_size=8",
            "callbacks=[{ModelCheckpoint: {every_n_train_steps: 1, save_last: true}}]"]
    straight = dtrain(tmp_path, "run", "spec.yaml", *fsdp, "trainer.max_epochs=4")
    assert straight.returncode == 0, straight.stderr
    first = dtrain(tmp_path, "run", "spec.yaml", *fsdp, "trainer.max_epochs=2")
    assert first.returncode == 0, first.stderr
    resumed = dtrain(tmp_path, "resume", str(run_folder(tmp_path, 1)), "trainer.max_epochs=4")
    assert resumed.returncode == 0, resumed.stderr
    a, b = weights(run_folder(tmp_path, 0)), weights(run_folder(tmp_path, 1))
    assert all(torch.equal(a[key], b[key]) for key in a)
