"""How many CPU threads torch uses: as many as the CPUs this process may really use.

torch starts with one intra-op thread per host core, even where the process may use fewer: a CPU
affinity mask (taskset, a scheduler's cpuset) or a container's CPU quota (cgroup `cpu.max`, or
cgroup v1's `cpu.cfs_quota_us`). More threads than usable CPUs make the threads wait on each other
at every parallel op, which slows a training loop many times over; so does other busy work on the
same cores, which a run points out. `trainer.num_threads` overrides the choice (`auto`, the default,
is the count found here). The count does not follow the load: a seeded run gives the same numbers
on the same machine, and a different thread count can change the last bits of a reduction.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _affinity_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux; elsewhere the host's count
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _quota(text: str, period_text: str | None = None) -> float | None:
    """CPUs a cgroup quota allows: v2 'max 100000' / '150000 100000', or v1's quota and period files."""
    parts = text.split()
    if period_text is not None:
        parts = parts[:1] + period_text.split()[:1]
    if len(parts) < 2 or parts[0] in ("max", "-1"):
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def cgroup_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup and of the cgroups above it (the smallest), or None when unlimited."""
    folders = []
    for line in (_read(proc_cgroup) or "").splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        relative = path.strip().lstrip("/")
        if controllers == "":  # cgroup v2: one hierarchy
            folders.append(root / relative)
        elif "cpu" in controllers.split(","):
            folders.extend(base / relative for base in (root / "cpu", root / "cpu,cpuacct", root / controllers))
    quotas = []
    for folder in folders + [root, root / "cpu"]:
        while True:  # a limit on a parent cgroup holds for its children
            v2 = _read(folder / "cpu.max")
            v1 = _read(folder / "cpu.cfs_quota_us")
            found = _quota(v2) if v2 is not None else _quota(v1, _read(folder / "cpu.cfs_period_us")) if v1 else None
            if found is not None:
                quotas.append(found)
            if folder == root or root not in folder.parents:
                break
            folder = folder.parent
    return min(quotas, default=None)


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity mask, capped by its cgroup's CPU quota (rounded up)."""
    cpus = _affinity_cpus()
    quota = cgroup_cpus()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def busy_elsewhere() -> float:
    """The machine's 1-minute load average where this process may use every core (elsewhere it counts
    other containers' work too), else 0."""
    if not hasattr(os, "getloadavg") or usable_cpus() < (os.cpu_count() or 1):
        return 0.0
    return os.getloadavg()[0]


@contextmanager
def intra_op_threads(setting: int | str = "auto") -> Iterator[str]:
    """Use `setting` threads (auto: usable_cpus()) inside the block and torch's earlier count after it;
    yields the line `dtrain run` prints, e.g. 'threads: 2 (the CPUs this process may use)'."""
    import torch

    before = torch.get_num_threads()
    chosen = usable_cpus() if setting == "auto" else int(setting)
    why = "trainer.num_threads" if setting != "auto" else "the CPUs this process may use"
    if setting == "auto" and os.environ.get("OMP_NUM_THREADS"):  # a launcher's (torchrun's) or the user's choice
        chosen, why = before, "OMP_NUM_THREADS"
    if setting == "auto" and chosen > 1 and busy_elsewhere() >= chosen - 0.5:
        # Fewer threads would not be reproducible run to run if chosen from the load: say it instead.
        why += f"; other work keeps them busy (load {os.getloadavg()[0]:.1f}): trainer.num_threads: 1 may be much faster"
    if chosen != before:
        torch.set_num_threads(chosen)
    try:
        yield f"threads: {chosen} ({why})"
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
