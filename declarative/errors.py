"""Located problems: every error a user can cause names the place in the spec that caused it."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Location:
    """Where a value came from: a line and column in a file, or a command-line override."""

    file: str
    line: int | None = None
    col: int | None = None
    override: str | None = None  # the `key.path=value` text, when the value came from one

    def __str__(self) -> str:
        if self.override is not None:
            return f"{self.file}: override '{self.override}'"
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


def printable(text: str) -> str:
    """Text with its control characters escaped (`\\n`, `\\x1e`): a value from a file prints on one line, as
    written, and cannot move the terminal's cursor."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


@dataclass(frozen=True)
class Problem:
    location: Location
    message: str

    def __str__(self) -> str:
        """One line: `file:line:col: message`."""
        return printable(f"{self.location}: {self.message}")


class SpecError(Exception):
    """One or more problems a user can fix in the spec, its overrides or its data.

    The CLI prints each problem on one line and exits 1; it never shows a traceback for these.
    """

    def __init__(self, problems: Problem | Iterable[Problem]):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(Exception):
    """A command line that cannot be understood (exit code 2)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A short hint naming the closest known names, or '' when nothing is close."""
    choices = list(choices)
    same = [c for c in choices if c.lower() == name.lower()]
    if same:  # only the case differs: that is the one
        return f"did you mean '{same[0]}'?"
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    close += [c for c in choices if c.lower().startswith(name.lower()) and c not in close][: 3 - len(close)]
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)]
    if not close:
        return ""
    if len(close) == 1:
        return f"did you mean '{close[0]}'?"
    return "did you mean " + ", ".join(f"'{c}'" for c in close[:-1]) + f" or '{close[-1]}'?"


MAX_SHOWN = 50  # problems printed per file: a broken file of a million keys must not print a million lines


def report_lines(problems: list[Problem]) -> list[str]:
    """The lines that report `problems`: at most MAX_SHOWN, then a note of how many more there are."""
    lines = [str(problem) for problem in problems[:MAX_SHOWN]]
    if len(problems) > MAX_SHOWN:
        lines.append(printable(f"{problems[0].location.file}: note: {len(problems) - MAX_SHOWN} more problems not "
                               "shown"))
    return lines
