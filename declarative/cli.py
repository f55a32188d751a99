"""The `dtrain` command: run, validate, summary, test, schema, layers, init, runs.

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

from declarative.errors import SpecError, UsageError, printable

app = typer.Typer(
    name="dtrain",
    help="Declarative training for PyTorch: one YAML spec describes the whole experiment.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

OVERRIDES_HELP = "Overrides as key.path=value, e.g. trainer.max_epochs=3 data.batch_size=128."


def _version(value: bool) -> None:
    if value:
        from importlib import metadata

        out.print(f"dtrain {metadata.version('dtrain')}", markup=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Declarative training for PyTorch: one YAML spec describes the whole experiment."""


def _fail(exc: SpecError) -> typer.Exit:
    from declarative.training.launcher import launched_here, report_error

    if launched_here():  # one process of a launched run: the launcher shows the first message, once
        report_error("\n".join(str(problem) for problem in exc.problems))
        return typer.Exit(1)
    _report(exc.problems)
    return typer.Exit(1)


def _usage(exc: UsageError) -> typer.Exit:
    err.print(printable(f"usage error: {exc}"), markup=False)
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
    from declarative.interrupt import Terminated, terminate_as_interrupt
    from declarative.run import fit_spec
    from declarative.training.launcher import launched_here, report_error
    from declarative.training.preemption import TrainingInterrupted, handle_signals

    try:
        with terminate_as_interrupt(), handle_signals():  # SIGTERM / SIGINT in training: a resumable
            fit_spec(spec, console=out, resume_from=resume, overrides=overrides or [])  # checkpoint, then exit
    except TrainingInterrupted as exc:
        from declarative.assembly.resume import interrupted_message

        if not launched_here() or os.environ.get("RANK", "0") == "0":
            err.print(interrupted_message(exc), markup=False)
        raise typer.Exit(exc.exit_code) from None
    except SpecError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (terminate_as_interrupt): the same cleanup
        if not launched_here():
            cause = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            err.print(f"{cause}: the run folder keeps the checkpoints saved so far")
        raise typer.Exit(Terminated.exit_code if isinstance(exc, Terminated) else 130) from None
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
    no_cache: bool = typer.Option(False, "--no-cache", help="Check every spec again, even one that has not changed."),
) -> None:
    """Check specs: schema, names, values and shapes. Quiet when all are valid; exit 1 otherwise.

    Outcomes are remembered in the user's cache folder until the spec, its data files or dtrain change."""
    from declarative.spec.validate_files import validate_files

    say = lambda line: err.print(line, markup=False)  # noqa: E731
    if not validate_files(spec_files, schema_only=schema_only, use_cache=not no_cache, say=say):
        raise typer.Exit(1)


def _report(problems) -> None:
    from declarative.errors import report_lines

    for line in report_lines(problems):
        err.print(line, markup=False)


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
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:  # a missing folder, no permission, a full disk
            err.print(printable(f"{output}: cannot write the schema: {exc.strerror or exc}"), markup=False)
            raise typer.Exit(1) from None


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
        err.print(printable(f"usage error: unknown --kind '{kind}'" + (f" — {hint}" if hint else "")
                            + f" (one of: {', '.join(KINDS)})"), markup=False)
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


@app.command()
def init(
    data: Path = typer.Argument(..., help="An image folder (root/<class>/<image>), a .csv table or a .npz/.pt/.npy file."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="The spec to write (default: <data's name>.yaml here)."),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="A CSV's target column (asked when left out)."),
    force: bool = typer.Option(False, "--force", help="Overwrite the output if it exists."),
) -> None:
    """Write a commented starter spec for DATA that validates and trains as written."""
    from declarative.init_spec import starter_spec

    spec_path = output or Path(f"{(data.stem if data.is_file() else data.resolve().name) or 'spec'}.yaml")
    if spec_path.exists() and not force:
        err.print(f"usage error: {spec_path} exists — choose another with -o, or --force to overwrite it", markup=False)
        raise typer.Exit(2)
    ask = None
    if sys.stdin.isatty():
        def ask(columns: list[str]) -> str:
            return typer.prompt(f"Target column ({', '.join(columns)})", default=columns[-1])
    try:
        text = starter_spec(data, spec_path, target=target, ask=ask)
    except UsageError as exc:
        raise _usage(exc) from None
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(text, encoding="utf-8")
    out.print(f"wrote {spec_path}: check it with `dtrain validate {spec_path}`, train it with `dtrain run {spec_path}`",
              markup=False)


@app.command()
def runs(
    name: str = typer.Argument("*", help="A run name or wildcard pattern (default: every run)."),
    root: Path = typer.Option(Path("runs"), "--root", help="The folder runs are written to (trainer.default_root_dir)."),
) -> None:
    """List runs, newest first: status, start, duration, epochs and the best value of the monitored metric."""
    from declarative.training.run_list import duration_text, list_runs, started_text

    found = list_runs(root, name)
    if not found:
        err.print(f"no runs under {root}" + (f" named '{name}'" if name != "*" else ""), markup=False)
        return
    table = Table(show_header=True, box=None, pad_edge=False)
    for column in ("run", "status", "started", "duration", "epochs", "best"):
        table.add_column(column, no_wrap=True, justify="right" if column in ("duration", "epochs") else "left")
    for run in found:
        best = f"{run.monitor} {run.best:.4g}" if run.best is not None else "-"
        table.add_row(f"{run.name}/version_{run.version}", run.status, started_text(run.started),
                      duration_text(run.duration_s), "-" if run.epochs is None else str(run.epochs), best)
    (out if out.is_terminal else Console(file=out.file, width=200, highlight=False)).print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
