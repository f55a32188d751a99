"""Start a run's processes on this machine with torch.distributed's elastic agent — what torchrun runs.

`dtrain run spec.yaml trainer.devices=4` starts 4 copies of the same command, one per device, each
with torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) set, rendezvous on
a free local port. A copy finds those variables and does not launch again. When one copy fails,
the agent ends the others at once; the failing copy's message is shown once.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ERRORS_DIR_ENV", "LaunchOutcome", "launch", "report_error", "launched_here"]

# Set for the copies this launcher starts: where each writes its error message, for the launcher to show once.
ERRORS_DIR_ENV = "DTRAIN_ERRORS_DIR"


@dataclass(frozen=True)
class LaunchOutcome:
    """How a launched run ended: the exit code to leave with, and the one message to show (if any)."""

    exit_code: int
    message: str | None = None


def launched_here() -> bool:
    """Whether this process is a copy started by `launch` (its errors go to the launcher, not the terminal)."""
    return ERRORS_DIR_ENV in os.environ


def report_error(text: str) -> None:
    """Leave this copy's error message for the launcher (written whole, then renamed into place)."""
    folder = Path(os.environ[ERRORS_DIR_ENV])
    rank = os.environ.get("RANK", "0")
    tmp = folder / f".rank{rank}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, folder / f"rank{rank}.txt")


def launch(nprocs: int, args: list[str]) -> LaunchOutcome:
    """Run `python -m declarative *args` as `nprocs` processes on this machine; wait for all of them."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from torch.distributed.elastic.agent.server import api  # noqa: F401  (creates the agent's loggers)

    for name in list(logging.Logger.manager.loggerDict):  # the outcome is reported here, once
        if name.startswith(("torch.distributed.elastic", "torch.distributed.launcher")):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    errors_dir = tempfile.mkdtemp(prefix="dtrain-errors-")
    os.environ[ERRORS_DIR_ENV] = errors_dir
    threads_set = "OMP_NUM_THREADS" not in os.environ
    if threads_set:  # the processes share this machine's cores: each takes its part (torchrun gives each 1)
        from declarative.training.threads import usable_cpus

        os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cpus() // nprocs))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nprocs, run_id=f"dtrain-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1)
    try:
        elastic_launch(config, sys.executable)("-m", "declarative", *args)
        return LaunchOutcome(0)
    except ChildFailedError as exc:
        return LaunchOutcome(1, _failure_message(exc, Path(errors_dir)))
    except SignalException as exc:
        code = 128 + int(exc.sigval)
        return LaunchOutcome(code, "interrupted: every process stopped; the run folder keeps the checkpoints "
                                   "saved so far" if exc.sigval in (signal.SIGINT, signal.SIGTERM) else None)
    except KeyboardInterrupt:
        return LaunchOutcome(130, "interrupted: every process stopped; the run folder keeps the checkpoints saved "
                                  "so far")
    finally:
        del os.environ[ERRORS_DIR_ENV]
        if threads_set:
            del os.environ["OMP_NUM_THREADS"]
        shutil.rmtree(errors_dir, ignore_errors=True)


def _failure_message(exc, errors_dir: Path) -> str:
    """The first error a copy reported; else the copy a signal killed; else what ended the first copy that failed."""
    reports = sorted(errors_dir.glob("rank*.txt"), key=lambda p: p.stat().st_mtime)
    if reports:
        return reports[0].read_text(encoding="utf-8").rstrip("\n")
    # A copy killed by a signal is the cause; copies that exited with an error had seen a peer vanish (they
    # may end first: the launcher notices both in the same look).
    killed = [(rank, failure) for rank, failure in sorted(exc.failures.items()) if failure.exitcode < 0]
    rank, failure = killed[0] if killed else exc.get_first_failure()
    if failure.exitcode < 0:
        name = signal.Signals(-failure.exitcode).name
        return (f"process {rank} of the run (pid {failure.pid}) was killed by {name}; every other process was "
                "stopped — the run folder keeps the checkpoints saved so far")
    return (f"process {rank} of the run (pid {failure.pid}) exited with code {failure.exitcode}; every other process "
            "was stopped")
