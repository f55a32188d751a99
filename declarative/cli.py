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
) -> None:
    """Train, validate and test: logs and checkpoints go to runs/<name>/version_<N>/."""
    spec = _load(spec_file, overrides)
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

        outcome = launch(processes.processes, ["run", str(spec_file), *(overrides or []), f"seed={spec.seed}"])
        if outcome.message:
            err.print(outcome.message, markup=False, soft_wrap=True)
        raise typer.Exit(outcome.exit_code)
    _fit(spec)


def _fit(spec) -> None:
    """Train in this process (alone, or as one process of a launched run)."""
    from declarative.run import fit_spec
    from declarative.training.launcher import launched_here, report_error

    try:
        fit_spec(spec, console=out)
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


CHECKPOINT_HELP = "A checkpoint written by `dtrain run`, or a run folder (its best, else last), RUN/best or RUN/last."


@app.command()
def test(
    checkpoint: Path = typer.Argument(..., help=CHECKPOINT_HELP, metavar="CKPT"),
    overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP, metavar="KEY=VALUE"),
    split: str = typer.Option("test", "--split", help="The split to evaluate on: test or val."),
) -> None:
    """Test a checkpoint alone: its embedded spec rebuilds model and data; prints the split's metrics.

    Overrides change the embedded spec, e.g. `data.source.ImageFolder.root=/data/pets` where the data
    lives elsewhere on this machine."""
    from declarative.inference.checkpoints import resolve_checkpoint
    from declarative.run import test_checkpoint

    if split not in ("test", "val"):
        raise _usage(UsageError(f"--split {split}: one of test, val"))
    try:
        test_checkpoint(resolve_checkpoint(checkpoint), overrides or [], console=out, split=split)
    except SpecError as exc:
        raise _fail(exc) from None


@app.command()
def predict(
    checkpoint: Path = typer.Argument(..., help=CHECKPOINT_HELP, metavar="CKPT"),
    inputs: List[str] = typer.Argument(..., help="Image files, folders of images, a .csv without the targets, "
                                       ".npy/.npz/.pt arrays, or split:NAME; then KEY=VALUE overrides of the "
                                       "checkpoint's spec.", metavar="INPUT... [KEY=VALUE...]"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to a .csv, .jsonl, .npy or .pt file "
                                          "instead of a table on stdout."),
    top_k: int = typer.Option(1, "--top-k", min=1, help="Also give the k most probable classes (multiclass)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Default: the spec's batch size."),
    accelerator: str = typer.Option("auto", "--accelerator", help="auto, cpu, gpu, cuda or mps."),
) -> None:
    """Predict with a checkpoint's model on new inputs, through its evaluation transforms."""
    from declarative.assembly.trained import load_trained
    from declarative.inference.checkpoints import resolve_checkpoint
    from declarative.inference.inputs import read_inputs
    from declarative.inference.predict import predict as run_predict, write_predictions

    given = [i for i in inputs if "=" not in i or Path(i).exists()]
    overrides = [i for i in inputs if i not in given]
    if not given:
        raise _usage(UsageError("predict needs at least one INPUT (a file, a folder or split:NAME)"))
    try:
        device = _device(accelerator)
        trained = load_trained(resolve_checkpoint(checkpoint), overrides)
        samples = read_inputs(trained, given)
        result = run_predict(trained, samples, device=device, batch_size=batch_size or trained.spec.data.batch_size,
                             console=err)
        write_predictions(result, output, top_k=top_k, console=out)
    except SpecError as exc:
        raise _fail(exc) from None
    except UsageError as exc:
        raise _usage(exc) from None
    if output is not None:
        err.print(f"{len(result.ids)} predictions written to {output}", markup=False)


@app.command()
def export(
    checkpoint: Path = typer.Argument(..., help=CHECKPOINT_HELP, metavar="CKPT"),
    overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP, metavar="KEY=VALUE"),
    fmt: str = typer.Option("pt2", "--format", "-f", help="pt2 (torch.export), onnx or torchscript."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Default: the checkpoint's name with "
                                          ".pt2, .onnx or .pt."),
    no_preprocess: bool = typer.Option(False, "--no-preprocess", help="Leave the evaluation transforms out: the "
                                       "module takes what the model takes."),
) -> None:
    """Export a checkpoint's model (with its evaluation preprocessing) and check it against the model."""
    from declarative.assembly.trained import load_trained
    from declarative.inference.checkpoints import resolve_checkpoint
    from declarative.inference.export import FORMATS, export_trained, preprocessing

    if fmt not in FORMATS:
        raise _usage(UsageError(f"--format {fmt}: one of {', '.join(FORMATS)}"))
    try:
        trained = load_trained(resolve_checkpoint(checkpoint), overrides or [])
        if not no_preprocess and trained.transforms and (why := preprocessing(trained)[1]):
            err.print(f"note: the evaluation transforms stay out of the export ({why}); apply them before it",
                      markup=False)
        result = export_trained(trained, fmt, output, preprocess=not no_preprocess)
    except SpecError as exc:
        raise _fail(exc) from None
    takes = f"[N, {', '.join(map(str, result.input_shape))}] {result.input_dtype}"
    out.print(f"exported {result.path} ({fmt}): takes {takes}" + (", preprocessing included" if result.preprocess
                                                                 else ""), markup=False)
    out.print(f"checked against the checkpoint's model: max abs difference {result.max_abs_diff:.3g}", markup=False)


def _device(accelerator: str):
    """The first device of `accelerator` on this machine; a usage error when there is none."""
    from declarative.training.accelerators import ACCELERATOR_CHOICES, select_accelerator
    from declarative.training.errors import MisconfigurationError

    if accelerator not in ACCELERATOR_CHOICES:
        raise UsageError(f"--accelerator {accelerator}: one of {', '.join(ACCELERATOR_CHOICES)}")
    try:
        return select_accelerator(accelerator).device(0)
    except MisconfigurationError as exc:
        raise UsageError(exc.message) from None


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
