"""The `dtrain` command's entry point. `dtrain validate` over specs whose outcomes are all remembered
is answered here, before the command-line library loads (it alone takes longer than the answer)."""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "validate":
        from declarative.spec.validate_files import replay

        code = replay(sys.argv[2:])
        if code is not None:
            sys.exit(code)
    from declarative.cli import main as command_line

    command_line()
