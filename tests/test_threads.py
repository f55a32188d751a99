"""torch's CPU threads follow the CPUs the process may use (affinity, cgroup quota); trainer.num_threads
overrides the choice, a run prints it beside the data line, and torch's count is back after the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from declarative.training.threads import cgroup_cpus
from trainer_specs import quiet, run


def _cgroup(tmp_path: Path, files: dict[str, str], proc: str) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "proc_cgroup").write_text(proc)
    return root, tmp_path / "proc_cgroup"


def test_a_cgroup_v2_quota_on_the_process_or_a_parent_counts_the_smallest(tmp_path):
    root, proc = _cgroup(tmp_path, {"cpu.max": "max 100000\n", "app/cpu.max": "250000 100000\n",
                                    "app/job/cpu.max": "150000 100000\n"}, "0::/app/job\n")
    assert cgroup_cpus(root, proc) == 1.5
    root, proc = _cgroup(tmp_path / "unlimited", {"cpu.max": "max 100000\n"}, "0::/\n")
    assert cgroup_cpus(root, proc) is None


def test_a_cgroup_v1_quota_counts_too(tmp_path):
    root, proc = _cgroup(tmp_path, {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000\n",
                                    "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"},
                         "4:cpu,cpuacct:/docker/abc\n")
    assert cgroup_cpus(root, proc) == 2.0


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's")
def test_a_process_pinned_to_one_cpu_uses_one_thread():
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
            "from declarative.training.threads import intra_op_threads\n"
            "import torch\n"
            "with intra_op_threads() as line: print(line, torch.get_num_threads())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "threads: 1 (the CPUs this process may use) 1", result.stderr


def test_the_spec_sets_the_threads_and_the_run_prints_them_and_gives_them_back(tmp_path):
    before = torch.get_num_threads()
    console = quiet()
    run(tmp_path, "trainer.num_threads=1", "trainer.max_epochs=1", console=console)
    data_line = next(line for line in console.file.getvalue().splitlines() if line.startswith("data: "))
    assert data_line.startswith("data: in memory on cpu") and data_line.endswith("; threads: 1 (trainer.num_threads)")
    assert torch.get_num_threads() == before
