"""SIGTERM as Ctrl-C: a terminated run unwinds like an interrupted one, keeping what it saved.

A batch system, `timeout` or `docker stop` ends a process with SIGTERM. Python's default is to
die on the spot (exit 143, no message, no `finally`); inside `terminate_as_interrupt()` the
signal raises `Terminated` where the program is, so the same cleanup as for Ctrl-C runs.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["Terminated", "terminate_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """The process was sent SIGTERM. A KeyboardInterrupt, so every Ctrl-C cleanup applies to it."""

    exit_code = 128 + signal.SIGTERM  # 143, the shell's code for a process ended by SIGTERM


def _raise_terminated(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated()


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises `Terminated`; the previous handler is restored on the way out."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
