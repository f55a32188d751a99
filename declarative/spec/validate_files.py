"""`dtrain validate` over many files: the schema stage for every file first (it needs no torch), then
the semantic stage; each file's outcome is remembered (declarative.spec.validate_cache) and replayed
while nothing it depends on changes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from declarative.errors import SpecError, printable, report_lines
from declarative.spec.validate_cache import Outcome, ValidateCache


def validate_files(paths: list[Path], *, schema_only: bool, use_cache: bool, say: Callable[[str], None]) -> bool:
    """Check each spec, printing one line per problem (and notes) with `say`; True when all are valid."""
    cache = ValidateCache("schema" if schema_only else "full", enabled=use_cache)
    outcomes: dict[int, Outcome] = {}
    keys: dict[int, str | None] = {}
    to_check = []
    for i, path in enumerate(paths):
        keys[i] = cache.key(path)
        remembered = cache.get(keys[i])
        if remembered is not None:
            for line in remembered.lines:
                say(line)
            outcomes[i] = remembered
        else:
            to_check.append(i)

    def record(i: int, lines: list[str], failed: bool) -> None:
        for line in lines:
            say(line)
        outcomes[i].lines.extend(lines)
        outcomes[i].failed = outcomes[i].failed or failed

    documents = {}
    if to_check:
        from declarative.spec.document import load_file
        from declarative.spec.validate import schema_stage

        for i in to_check:
            outcomes[i] = Outcome(lines=[], failed=False)
            try:
                doc = load_file(paths[i])
                problems = schema_stage(doc)
            except SpecError as exc:
                problems = exc.problems
            record(i, report_lines(problems), bool(problems))
            if not problems:
                documents[i] = doc
    if documents and not schema_only:
        from declarative.spec.config import spec_from_document
        from declarative.spec.validate import semantic_problems

        for i, doc in documents.items():
            spec = spec_from_document(doc)
            problems = semantic_problems(spec, read_data=True)
            lines = report_lines(problems)
            if spec.model.skipped:
                lines.append(printable(f"{doc.file}: note: the model is not checked: it takes values from data that "
                                       "cannot be read here (input: auto, ${data.*})"))
            record(i, lines, bool(problems))
    for i in to_check:
        cache.put(keys[i], outcomes[i])
    return not any(outcome.failed for outcome in outcomes.values())


def replay(args: list[str]) -> int | None:
    """`dtrain validate ARGS` answered from the cache alone: the exit code, or None when a spec's outcome
    is not remembered or the arguments are more than spec files and --schema-only (the command then runs)."""
    schema_only = "--schema-only" in args
    files = [a for a in args if a != "--schema-only"]
    if not files or any(a.startswith("-") for a in files):
        return None
    cache = ValidateCache("schema" if schema_only else "full")
    outcomes = [cache.get(cache.key(Path(f))) for f in files]
    if any(o is None for o in outcomes):
        return None
    sys.stderr.writelines(line + "\n" for o in outcomes for line in o.lines)
    return 1 if any(o.failed for o in outcomes) else 0
