"""DeviceStatsMonitor: log the device's memory (and the CPU's load) at each logging step."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any, Optional

import torch

from declarative.callbacks.base import Callback
from declarative.training.errors import MisconfigurationError

__all__ = ["DeviceStatsMonitor", "cpu_stats", "device_stats"]

# What torch.cuda.memory_stats() has most to say about, in bytes (filter_keys picks any other of its keys).
CUDA_KEYS = ("allocated_bytes.all.current", "allocated_bytes.all.peak", "reserved_bytes.all.current",
             "reserved_bytes.all.peak", "active_bytes.all.current", "active_bytes.all.peak", "num_ooms",
             "num_alloc_retries")


class DeviceStatsMonitor(Callback):
    """Log device statistics every ``log_every_n_steps`` training steps, as Lightning's DeviceStatsMonitor.

    Names are ``DeviceStatsMonitor.on_train_batch_end/<stat>``. On CUDA: torch.cuda.memory_stats()'s allocated,
    reserved and active bytes (current and peak), ``num_ooms`` and ``num_alloc_retries``. On MPS: the allocated
    and driver memory. CPU stats, read from the standard library and /proc (psutil is not needed):
    ``cpu_percent`` (system-wide), ``cpu_vm_percent`` and ``cpu_swap_percent`` (memory and swap in use),
    ``process_cpu_percent`` (this process, over the steps since the last log; may pass 100 with several
    threads), ``process_rss_bytes`` and ``process_peak_rss_bytes``. The /proc ones are left out off Linux.

    Args:
        cpu_stats: log CPU stats: none: only when training on the CPU; true: also beside a GPU; false:
            never. Default: None
        filter_keys: log only these stats (names without the prefix, e.g. ``allocated_bytes.all.peak``;
            any key of torch.cuda.memory_stats() may be named). Default: None (the list above)
    """

    def __init__(self, cpu_stats: Optional[bool] = None, filter_keys: Optional[list[str]] = None):
        self._cpu_stats = cpu_stats
        self._filter_keys = set(filter_keys) if filter_keys is not None else None
        self._cpu = _CpuClock()

    def setup(self, trainer: Any, model: Any, stage: str) -> None:
        if stage != "fit":
            return
        if not trainer.loggers and trainer.is_global_zero:  # only process 0 logs
            raise MisconfigurationError("DeviceStatsMonitor needs a logger, but this run has none — remove "
                                        "`logger: false` or this callback")
        if self._filter_keys is not None:
            known = set(self._stats(trainer.strategy.root_device, everything=True))
            unknown = sorted(self._filter_keys - known)
            if unknown:
                trainer.print(f"note: DeviceStatsMonitor has no stat {', '.join(unknown)} here (it has: "
                              f"{', '.join(sorted(known))}); those are not logged")

    def on_train_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not trainer.log_step_due:
            return
        stats = self._stats(trainer.strategy.root_device)
        trainer.log({f"DeviceStatsMonitor.on_train_batch_end/{key}": value for key, value in stats.items()})

    def _stats(self, device: torch.device, everything: bool = False) -> dict[str, float]:
        stats = {} if device.type == "cpu" else device_stats(device, everything or self._filter_keys is not None)
        if self._cpu_stats or (self._cpu_stats is None and device.type == "cpu"):
            stats.update(self._cpu.read())
        if self._filter_keys is not None and not everything:
            stats = {key: value for key, value in stats.items() if key in self._filter_keys}
        return stats


def device_stats(device: torch.device, everything: bool = False) -> dict[str, float]:
    """The accelerator's memory statistics (CUDA: a chosen few of torch.cuda.memory_stats(), or all of them)."""
    if device.type == "cuda":
        stats = torch.cuda.memory_stats(device)
        return {key: float(value) for key, value in stats.items()
                if (everything or key in CUDA_KEYS) and isinstance(value, (int, float))}
    if device.type == "mps":
        return {"current_allocated_bytes": float(torch.mps.current_allocated_memory()),
                "driver_allocated_bytes": float(torch.mps.driver_allocated_memory())}
    return {}


class _CpuClock:
    """CPU stats, from differences between two reads (the first read: since the process started)."""

    def __init__(self) -> None:
        self._wall = time.monotonic()
        self._process = _process_seconds()
        self._system: tuple[float, float] | None = _system_times()

    def read(self) -> dict[str, float]:
        wall, process, system = time.monotonic(), _process_seconds(), _system_times()
        stats = cpu_stats()
        if wall > self._wall:
            stats["process_cpu_percent"] = 100.0 * (process - self._process) / (wall - self._wall)
        if system is not None and self._system is not None and system[1] > self._system[1]:
            busy, total = system[0] - self._system[0], system[1] - self._system[1]
            stats["cpu_percent"] = 100.0 * busy / total
        self._wall, self._process, self._system = wall, process, system
        return stats


def cpu_stats() -> dict[str, float]:
    """Memory in use (system-wide, from /proc/meminfo) and this process's resident memory."""
    stats: dict[str, float] = {}
    meminfo = _meminfo()
    if meminfo.get("MemTotal"):
        stats["cpu_vm_percent"] = 100.0 * (1 - meminfo.get("MemAvailable", meminfo.get("MemFree", 0)) / meminfo["MemTotal"])
    if meminfo.get("SwapTotal"):
        stats["cpu_swap_percent"] = 100.0 * (1 - meminfo.get("SwapFree", 0) / meminfo["SwapTotal"])
    statm = Path("/proc/self/statm")
    if statm.exists():
        stats["process_rss_bytes"] = float(int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    stats["process_peak_rss_bytes"] = float(peak if os.uname().sysname == "Darwin" else peak * 1024)
    return stats


def _process_seconds() -> float:
    # every thread's CPU time at nanosecond resolution (os.times counts 10 ms ticks: a few quick steps read 0)
    return time.process_time()


def _system_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs, from /proc/stat; None off Linux."""
    try:
        fields = [float(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _meminfo() -> dict[str, float]:
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return {}
    values = {}
    for line in lines:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name] = float(parts[0])
    return values
