"""The `dtrain` command's entry point. `dtrain validate` over specs whose outcomes are all remembered
is answered here, before the command-line library loads (it alone takes longer than the answer).

A command that imported torch ends without tearing the interpreter down: freeing torch's thousands of
modules and objects one by one takes longer than many commands (0.7 s on two cores after `import torch`
alone, more after a run). What a normal exit does first still happens, in its order: other threads are
waited for, exit handlers run (multiprocessing's stop DataLoader workers, logging's flush), output is
flushed. Everything dtrain writes is closed by then.
"""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "validate":
        from declarative.spec.validate_files import replay

        code = replay(sys.argv[2:])
        if code is not None:
            sys.exit(code)
    from declarative.cli import main as command_line

    try:
        command_line()
    except SystemExit as exc:
        if "torch" not in sys.modules:
            raise
        _exit_now(exc.code)
    else:
        if "torch" in sys.modules:
            _exit_now(0)


def _exit_now(code: int | str | None) -> None:
    """Exit as `sys.exit(code)` would, without the interpreter's teardown."""
    import atexit
    import os
    import threading

    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for thread in threading.enumerate():  # a normal exit waits for them too
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`dtrain ... | head`) or stream
            pass
    os._exit(code or 0)
