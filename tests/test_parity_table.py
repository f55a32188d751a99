"""docs/lightning.md, the Lightning parity table: every row marked "yes" names the tests that show it, and
those tests exist; no row is left "not yet"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "lightning.md"
TESTS = ROOT / "tests"


def rows() -> list[tuple[str, str, str]]:
    found = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 3 and cells[1] in ("yes", "no", "not yet"):
            found.append((cells[0], cells[1], " | ".join(cells[2:])))
    return found


def known_tests() -> tuple[set[str], set[str]]:
    files = {path.stem for path in TESTS.glob("test_*.py")}
    functions = set()
    for path in TESTS.glob("test_*.py"):
        functions |= set(re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), re.MULTILINE))
    return files, functions


def test_the_table_has_every_kind_of_row_and_none_left_for_later():
    statuses = [status for _, status, _ in rows()]
    assert statuses.count("yes") > 50 and statuses.count("no") > 5
    assert "not yet" not in statuses, [name for name, status, _ in rows() if status == "not yet"]


@pytest.mark.parametrize("name, notes", [(name, notes) for name, status, notes in rows() if status == "yes"],
                         ids=lambda value: value[:40] if isinstance(value, str) else None)
def test_each_supported_row_names_tests_that_exist(name, notes):
    files, functions = known_tests()
    named = re.findall(r"\btest_\w+\*?", notes)
    assert named, f"{name}: a supported row names its tests"
    for test in named:
        if test.endswith("*"):
            assert any(f.startswith(test[:-1]) for f in functions), f"{name}: no test matches {test}"
        else:
            assert test in files or test in functions, f"{name}: {test} is neither a test file nor a test"
