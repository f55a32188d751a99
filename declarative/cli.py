"""The `dtrain` command: run, validate, summary, test, schema, layers.

Exit codes: 0 ok, 1 a problem in a spec, its data or a checkpoint (one located line each,
never a traceback), 2 a command line that cannot be understood.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from declarative.errors import SpecError, UsageError

app = typer.Typer(
    name="dtrain",
    help="Declarative training for PyTorch: one YAML spec describes the whole experiment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

OVERRIDES_HELP = "Overrides as key.path=value, e.g. trainer.max_epochs=3 data.batch_size=128."


def _fail(exc: SpecError) -> typer.Exit:
    from declarative.training.launcher import launched_here, report_error

    if launched_here():  # one process of a launched run: the launcher shows the first message, once
        report_error("\n".join(str(problem) for problem in exc.problems))
        return typer.Exit(1)
    for problem in exc.problems:
        err.print(str(problem), markup=False)
    return typer.Exit(1)


def _usage(exc: UsageError) -> typer.Exit:
    err.print(f"usage error: {exc}", markup=False)
    return typer.Exit(2)


def _load(spec_file: Path, overrides: list[str] | None, *, semantic: bool = True):
    from declarative.spec.validate import load_spec

    try:
        return load_spec(spec_file, overrides or [], semantic=semantic)
    except SpecError as exc:
        raise _fail(exc) from None
    except UsageError as exc:
        raise _usage(exc) from None


@app.command()
def run(
    spec_file: Path = typer.Argument(..., help="The spec to run.", metavar="SPEC"),
    overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP, metavar="KEY=VALUE"),
    print_spec: bool = typer.Option(False, "--print-spec", help="Print the resolved spec and exit without training."),
    resume: Optional[str] = typer.Option(None, "--resume", metavar="PATH",
                                         help="Go on exactly where a checkpoint stopped: a .ckpt file, a run folder "
                                              "(its newest checkpoint) or `last` (the newest run of this spec)."),
) -> None:
    """Train, validate and test: logs and checkpoints go to runs/<name>/version_<N>/."""
    spec = _load(spec_file, overrides)
    if resume is not None:
        from declarative.assembly.resume import find_checkpoint

        try:
            resume = str(find_checkpoint(resume, root=spec.trainer.default_root_dir, name=spec.name).resolve())
        except SpecError as exc:
            raise _fail(exc) from None
    if print_spec:
        from declarative.assembly.record import spec_text

        out.print(spec_text(spec), end="", markup=False)
        return
    from declarative.assembly.plugins import plan_processes
    from declarative.training.environments import detect_environment

    try:
        processes = plan_processes(spec, detect_environment())
    except SpecError as exc:
        raise _fail(exc) from None
    if processes.needs_launch:  # one process per device, started as torchrun would; each runs this command
        from declarative.training.launcher import launch

        resuming = ["--resume", resume] if resume is not None else []
        seed = [] if resume is not None else [f"seed={spec.seed}"]  # a resume takes the checkpoint's
        outcome = launch(processes.processes, ["run", str(spec_file), *(overrides or []), *seed, *resuming])
        if outcome.message:
            err.print(outcome.message, markup=False, soft_wrap=True)
        raise typer.Exit(outcome.exit_code)
    _fit(spec, resume, overrides or [])


@app.command(name="resume")
def resume_run(
    target: Path = typer.Argument(..., help="A run folder (its newest checkpoint resumes) or a checkpoint.",
                                  metavar="RUN_FOLDER"),
    overrides: Optional[List[str]] = typer.Argument(None, help="Changes that keep the training already done: "
                                                    "trainer.max_epochs=20, where the data lives, callbacks, loggers.",
                                                    metavar="KEY=VALUE"),
) -> None:
    """Go on with a stopped run exactly where it stopped, with the spec its checkpoint embeds."""
    from declarative.assembly.plugins import plan_processes
    from declarative.assembly.resume import find_checkpoint
    from declarative.spec.validate import spec_from_data
    from declarative.training.checkpoint import load_checkpoint
    from declarative.training.environments import detect_environment

    try:
        checkpoint = find_checkpoint(target).resolve()
        spec = spec_from_data(load_checkpoint(checkpoint)["spec"], origin=str(checkpoint), overrides=overrides or [])
        processes = plan_processes(spec, detect_environment())
    except SpecError as exc:
        raise _fail(exc) from None
    except UsageError as exc:
        raise _usage(exc) from None
    if processes.needs_launch:
        from declarative.training.launcher import launch

        outcome = launch(processes.processes, ["resume", str(checkpoint), *(overrides or [])])
        if outcome.message:
            err.print(outcome.message, markup=False, soft_wrap=True)
        raise typer.Exit(outcome.exit_code)
    _fit(spec, str(checkpoint), overrides or [])


def _fit(spec, resume: str | None = None, overrides: list[str] | None = None) -> None:
    """Train in this process (alone, or as one process of a launched run)."""
    from declarative.run import fit_spec
    from declarative.training.launcher import launched_here, report_error
    from declarative.training.preemption import TrainingInterrupted, handle_signals

    try:
        with handle_signals():  # SIGTERM / SIGINT: a resumable checkpoint at the next step boundary, then exit
            fit_spec(spec, console=out, resume_from=resume, overrides=overrides or [])
    except TrainingInterrupted as exc:
        from declarative.assembly.resume import interrupted_message

        if not launched_here() or os.environ.get("RANK", "0") == "0":
            err.print(interrupted_message(exc), markup=False)
        raise typer.Exit(exc.exit_code) from None
    except SpecError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        if not launched_here():
            err.print("interrupted: the run folder keeps the checkpoints saved so far")
        raise typer.Exit(130) from None
    except Exception as exc:
        if not launched_here():
            raise
        # A process of a launched run: a failed collective means another process failed first (the
        # launcher reports that one); anything else is reported as it is, without a traceback.
        from declarative.training.errors import is_peer_failure

        if not is_peer_failure(exc):
            report_error(f"process {os.environ.get('RANK', '?')} failed: {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None


@app.command()
def validate(
    spec_files: List[Path] = typer.Argument(..., help="Spec files to check.", metavar="SPEC..."),
    schema_only: bool = typer.Option(False, "--schema-only", help="Only the schema stage (no torch import)."),
) -> None:
    """Check specs: schema, names, values and shapes. Quiet when all are valid; exit 1 otherwise."""
    from declarative.spec.document import load_file
    from declarative.spec.validate import schema_problems, semantic_problems

    failed = False
    checked = []
    for path in spec_files:  # the schema stage first, for every file: it needs no torch
        try:
            doc = load_file(path)
            problems = schema_problems(doc)
        except SpecError as exc:
            problems = exc.problems
        if problems:
            failed = True
            _report(problems)
        else:
            checked.append(doc)
    if not schema_only:
        from declarative.spec.config import spec_from_document

        for doc in checked:
            spec = spec_from_document(doc)
            problems = semantic_problems(spec, read_data=True)
            if problems:
                failed = True
                _report(problems)
            if spec.model.skipped:
                err.print(f"{doc.file}: note: the model is not checked: it takes values from data that cannot be "
                          "read here (input: auto, ${data.*})", markup=False)
    if failed:
        raise typer.Exit(1)


def _report(problems) -> None:
    for problem in problems:
        err.print(str(problem), markup=False)


@app.command()
def summary(
    spec_file: Path = typer.Argument(..., help="The spec whose model to show.", metavar="SPEC"),
    overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP, metavar="KEY=VALUE"),
) -> None:
    """Each layer (nested ones indented) with its output shape and parameter count, on the meta device."""
    from declarative.model.builder import plan_model
    from declarative.model.summary import print_summary

    spec = _load(spec_file, overrides, semantic=False)
    try:
        plan = plan_model(spec)
    except SpecError as exc:
        raise _fail(exc) from None
    print_summary(out, plan, spec.name)


@app.command()
def test(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by `dtrain run`."),
    overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP, metavar="KEY=VALUE"),
) -> None:
    """Test a checkpoint alone: its embedded spec rebuilds model and data; prints the test metrics.

    Overrides change the embedded spec, e.g. `data.source.ImageFolder.root=/data/pets` where the data
    lives elsewhere on this machine."""
    from declarative.run import test_checkpoint

    try:
        test_checkpoint(checkpoint, overrides or [], console=out)
    except SpecError as exc:
        raise _fail(exc) from None


@app.command()
def schema(
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Print the spec's JSON Schema (2020-12), generated from the registries."""
    from declarative.spec.schema import schema_text

    text = schema_text()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


KINDS = ["layer", "loss", "optimizer", "scheduler", "source", "transform", "callback", "logger", "metric",
         "accelerator", "strategy", "precision", "initializer", "batch_transform"]


@app.command()
def layers(
    pattern: str = typer.Argument("*", help="A name or wildcard pattern, e.g. 'Conv*'."),
    kind: str = typer.Option("layer", "--kind", "-k", help="One of: " + ", ".join(KINDS) + "."),
) -> None:
    """List what a spec can name: layers (default), losses, optimizers, schedulers, ...

    Piped, each entry is one line: Name(args), with `!` after a required argument and `*` after
    one dtrain infers when it is left out."""
    if kind not in KINDS:
        from declarative.errors import did_you_mean

        hint = did_you_mean(kind, KINDS)
        err.print(f"usage error: unknown --kind '{kind}'" + (f" — {hint}" if hint else "")
                  + f" (one of: {', '.join(KINDS)})")
        raise typer.Exit(2)
    from declarative.spec.schema import plugin_registries, registries

    registry = {**registries(), **plugin_registries()}[kind]
    entries = [e for e in registry.entries() if fnmatch.fnmatchcase(e.name.lower(), pattern.lower())]
    if not out.is_terminal:  # piped (grep, a file): one plain line per entry, nothing wrapped
        for entry in entries:
            args = ", ".join(f"{n}*" if n in entry.inferred else n if not p.required else f"{n}!"
                             for n, p in entry.params.items())
            out.print(f"{entry.name}({args})  {entry.doc}", markup=False)
        return
    table = Table(show_header=True, box=None, pad_edge=False)
    table.add_column(kind)
    table.add_column("arguments (required in bold; inferred in italics)")
    table.add_column("what it is")
    for entry in entries:
        args = []
        for name, param in entry.params.items():
            if name in entry.inferred:
                args.append(f"[italic]{name}[/italic]")
            elif param.required:
                args.append(f"[bold]{name}[/bold]")
            else:
                args.append(name)
        table.add_row(entry.name, ", ".join(args), entry.doc)
    out.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
