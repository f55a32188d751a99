"""Preemption: SIGTERM and SIGINT stop a run at the next step boundary, with a checkpoint that resumes it.

Clusters preempt jobs with SIGTERM (SLURM, Kubernetes), a user stops one with Ctrl-C (SIGINT). Inside
`handle_signals()`, either signal only asks the trainer to stop: at the next step boundary it writes
`checkpoints/interrupted.ckpt` and raises `TrainingInterrupted`, which says how to resume. A second
signal stops at once (KeyboardInterrupt), for a run that hangs. Processes of a multi-process run agree
on the step where they already exchange values (every `log_every_n_steps` steps, and each epoch's end).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Iterator

__all__ = ["TrainingInterrupted", "handle_signals", "requested"]

_requested: str | None = None
_in_loop = False  # a trainer's loop is running: it honours a stop request at its next step boundary


class TrainingInterrupted(KeyboardInterrupt):
    """A run stopped by a signal at a step boundary, after saving `checkpoint`."""

    def __init__(self, signal_name: str, checkpoint: Path, epoch: int, global_step: int):
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.checkpoint = Path(checkpoint)
        self.epoch = epoch
        self.global_step = global_step

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process the signal ended."""
        number = getattr(signal, self.signal_name, None) if self.signal_name.startswith("SIG") else None
        return 128 + int(number) if number is not None else 130


@contextlib.contextmanager
def stopping_at_boundaries() -> Iterator[None]:
    """Within the block (the training loop), a signal waits for the next step boundary; outside, it stops at once."""
    global _in_loop
    _in_loop = True
    try:
        yield
    finally:
        _in_loop = False


def requested() -> str | None:
    """The name of the signal that asked this process to stop ("SIGTERM", "SIGINT"), or None."""
    return _requested


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT ask a training loop to stop at its next step boundary (a second
    signal, or one outside the loop, stops at once)."""
    global _requested
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return

    def ask_to_stop(signum: int, frame) -> None:
        global _requested
        if _requested is not None or not _in_loop:  # a second signal, or no step boundary to wait for:
            handler = previous.get(signum)  # what the signal did before (SIGTERM: a Terminated interrupt)
            if callable(handler):
                handler(signum, frame)
            raise KeyboardInterrupt
        _requested = signal.Signals(signum).name

    previous: dict = {}
    previous.update({sig: signal.signal(sig, ask_to_stop) for sig in (signal.SIGTERM, signal.SIGINT)})
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _requested = None
