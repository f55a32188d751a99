"""Spec validation: the schema stage (no torch), then the semantic stage (meta-device build).

Both stages collect every problem they can find and raise one SpecError listing them, each
located at the spec line (or command-line override) that caused it.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Iterable

from declarative.errors import Location, Problem, SpecError
from declarative.spec.document import Document, load_file, plain_data_problem
from declarative.spec.overrides import apply_overrides
from declarative.spec.safety import non_finite_problems, run_name_problems

REPO_SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "spec.schema.json"


@functools.cache
def committed_schema() -> dict:
    """The committed schema: inside the installed wheel, or schemas/ of a source checkout."""
    packaged = resources.files("declarative") / "spec.schema.json"
    if packaged.is_file():
        return json.loads(packaged.read_text(encoding="utf-8"))
    if REPO_SCHEMA.is_file():
        return json.loads(REPO_SCHEMA.read_text(encoding="utf-8"))
    from declarative.spec.schema import spec_schema  # a checkout without the file: generate it

    return spec_schema()


def _is_integer(checker, instance) -> bool:
    """An integer is an int: JSON Schema would take 32.0 as well, which then fails where torch wants an int."""
    return isinstance(instance, int) and not isinstance(instance, bool)


@functools.cache
def validator_class():
    """Draft 2020-12, with one change: an integer is an int (`32.0` is not), wherever the spec's values are checked."""
    from jsonschema import Draft202012Validator, validators

    return validators.extend(Draft202012Validator,
                             type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer))


@functools.cache
def _validator(blocks: str = "{}"):
    """The schema's validator, told the spec's blocks (as JSON, to be a cache key)."""
    from declarative.model.syntax import specialise

    return validator_class()(specialise(committed_schema(), json.loads(blocks)))


def _blocks_key(data: dict) -> str:
    model = data.get("model")
    blocks = model.get("blocks") if isinstance(model, dict) else None
    if not isinstance(blocks, dict):
        return "{}"
    params = {name: (b.get("params") if isinstance(b, dict) and isinstance(b.get("params"), dict) else {})
              for name, b in blocks.items()}
    return json.dumps({name: {"params": p} for name, p in params.items()}, sort_keys=True, default=str)


def schema_problems(doc: Document) -> list[Problem]:
    from declarative.spec.messages import problems_from_error

    if not isinstance(doc.data, dict):
        return [doc.problem((), "a spec is a mapping of sections (data, model, loss, optimizer, ...)")]
    from declarative.model.syntax import block_problems, item_problems

    validator = _validator(_blocks_key(doc.data))
    problems: list[Problem] = []
    for error in validator.iter_errors(doc.data):
        problems.extend(problems_from_error(error, doc, validator.schema))
    problems.extend(_scheduler_problems(doc))
    problems.extend(non_finite_problems(doc))
    problems.extend(run_name_problems(doc))
    problems.extend(_optimizer_problems(doc))
    problems.extend(item_problems(doc))
    problems.extend(block_problems(doc, committed_schema()["$defs"]["layer"]["else"]["properties"]))
    return _ordered(problems)


def _scheduler_problems(doc: Document) -> list[Problem]:
    """A scheduler section names exactly one scheduler besides its interval/frequency/monitor."""
    section = doc.data.get("scheduler")
    if not isinstance(section, dict):
        return []
    names = [k for k in section if k not in ("interval", "frequency", "monitor")]
    if len(names) == 1:
        if "monitor" in section and names[0] != "ReduceLROnPlateau":  # said, not silently dropped
            return [doc.problem(("scheduler", "monitor"), f"monitor is read only by ReduceLROnPlateau; {names[0]} "
                                                          "steps without a metric — remove monitor", key=True)]
        return []
    if not names:
        return [doc.problem(("scheduler",), "scheduler names no LR scheduler, e.g. {StepLR: {step_size: 1}}")]
    return [doc.problem(("scheduler",), f"scheduler names {len(names)} LR schedulers ({', '.join(names)}); "
                                        "name one")]


def _optimizer_problems(doc: Document) -> list[Problem]:
    """An optimizer section names exactly one optimizer besides its param_groups."""
    section = doc.data.get("optimizer")
    if not isinstance(section, dict) or not section:
        return []
    names = [k for k in section if k != "param_groups"]
    if len(names) == 1:
        return []
    if not names:
        return [doc.problem(("optimizer",), "optimizer names no optimizer beside param_groups, e.g. "
                                            "{SGD: {lr: 0.1}, param_groups: [...]}")]
    return [doc.problem(("optimizer",), f"optimizer names {len(names)} optimizers ({', '.join(names)}); name one")]


def _ordered(problems: Iterable[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.location.line or 0, p.location.col or 0))


def _monitor_problems(spec) -> list[Problem]:
    """Every monitored metric must be one the run logs: catch `val/acc` before training, not after.

    When the task (and so the default metrics) waits for the data, only `<stage>/loss` is certain:
    monitors of other names are checked when the run starts.
    """
    from declarative.training.metrics import metric_is_scalar, metric_log_name, stage_metric_names, unlogged_metric

    has_validation = spec.data.val is not None
    stages = ["train", "val"] if has_validation else ["train"]
    known = spec.metrics is not None
    items = spec.metrics or []
    names = [metric_log_name(m) for m in items if metric_is_scalar(m, spec.task)]
    tables = [f"{stage}/{metric_log_name(m)}" for stage in stages for m in items if not metric_is_scalar(m, spec.task)]
    logged = [n for stage in stages for n in stage_metric_names(stage, names)]
    monitored = [(c.path + (c.name, "monitor"), c.kwargs["monitor"], f"{c.name} monitor") for c in spec.callbacks
                 if isinstance(c.kwargs.get("monitor"), str) and c.kwargs.get("strict", True) is not False]
    if spec.scheduler and spec.scheduler.scheduler.name == "ReduceLROnPlateau":
        monitored.append((("scheduler", "monitor"), spec.scheduler.monitor, "ReduceLROnPlateau monitor"))
    problems = []
    for path, name, what in monitored:
        if not known and not name.endswith("/loss") and (has_validation or not name.startswith("val/")):
            continue  # the default metrics follow the task, which the data will tell
        message = unlogged_metric(name, logged, has_validation, what, tables)
        if message:
            problems.append(spec.problem(path, message))
    return problems


def _task_problems(spec, output_shape: tuple[int, ...] | None) -> tuple[list[Problem], object]:
    """Resolve the task where the loss or `task:` says it; metrics listed twice or unfit for the task.
    Returns the problems and the spec resolved as far as it can be without the data."""
    from declarative.assembly.tasks import resolve_task
    from declarative.training.metrics import duplicate_metrics

    problems = [spec.problem(("metrics", index), f"metric '{name}' is listed twice")
                for index, name in duplicate_metrics(spec.metrics or [])]
    if output_shape is not None:
        try:
            spec = resolve_task(spec, output_shape)
        except SpecError as exc:
            problems.extend(exc.problems)
    return problems, spec


def semantic_problems(spec, *, read_data: bool = False) -> list[Problem]:
    """The problems a meta-device build finds (see `check_spec`)."""
    return check_spec(spec, read_data=read_data)[0]


def check_spec(spec, *, read_data: bool = False) -> tuple[list[Problem], object]:
    """The problems a meta-device build finds, and the spec resolved as far as it can be without the data
    (the task its loss or `task:` says, with that task's default loss and metrics). A model that takes
    values from its data is checked against the data's described values (declarative.data.info); with
    `read_data`, the targets of data that is here are read for the class count where the description
    is only nominal."""
    from declarative.model.builder import plan_model

    problems = []
    output_shape = None
    if read_data:
        from declarative.data.info import fitted_source_problems

        problems.extend(fitted_source_problems(spec))
    try:
        if not problems and _data_values_known(spec, read_data):
            plan = plan_model(spec)
            output_shape = plan.output_shape
            _check_parameters(spec, plan)
    except SpecError as exc:
        problems.extend(exc.problems)
    task_problems, resolved = _task_problems(spec, output_shape)
    problems.extend(task_problems)
    problems.extend(_monitor_problems(resolved))
    problems.extend(_loader_problems(spec))
    problems.extend(_split_problems(spec))
    return _ordered(problems), resolved


def _check_parameters(spec, plan) -> None:
    """What needs the model's parameters by name: initializers, freezing and the optimizer's param groups.
    Built on the meta device: no memory, no weights read."""
    from declarative.model.builder import build_model
    from declarative.model.meta import on_meta
    from declarative.assembly.param_groups import param_groups

    with on_meta():
        model = build_model(spec, plan)
    param_groups(model, spec.optimizer, spec)


def _split_problems(spec) -> list[Problem]:
    """`order: last` takes the last samples as they come; stratify draws per class: one or the other."""
    return [spec.problem(split.path + ("order",), "order: last takes the last samples in their order, and stratify "
                                                 "draws each class's share at random — use one of them")
            for split in (spec.data.val, spec.data.test)
            if split is not None and split.order == "last" and split.stratify]


def _loader_problems(spec) -> list[Problem]:
    """DataLoader settings beside `loader: memory`, which has no DataLoader: say so rather than ignore them."""
    if spec.data.loader != "memory":
        return []
    return [spec.problem(("data", setting), f"{setting} is a DataLoader setting, but loader: memory batches tensors "
                                            f"without one — remove it, or use loader: dataloader (or auto)", key=True)
            for setting in ("num_workers", "pin_memory", "persistent_workers") if getattr(spec.data, setting) is not None]


def _data_values_known(spec, read: bool) -> bool:
    """Find the values a model takes from its data (`input: auto`, `${data.num_classes}`) without
    loading or downloading it: pre-commit machines often lack the data. Values that cannot be known
    without the files (an absent ImageFolder or CSV) skip the model check instead of failing it."""
    from declarative.model.data_values import uses_data

    if not uses_data(spec) or spec.model.data is not None:
        return True  # before importing the data stage: it imports torchvision, a second or more
    from declarative.data.info import DataInfo, DataUnreadable, raw_sample, transformed_sample

    try:
        raw = raw_sample(spec, read=read)  # a split or source named wrongly is a problem, reported
    except DataUnreadable:  # the files' own problems are the run's to report, with the data at hand
        raw = None
    if raw is None:
        spec.model.skipped = True
        return False
    # a transform that fails on the sample's shape raises here: a problem of the spec, reported
    sample = transformed_sample(spec, raw)
    spec.model.data = DataInfo(tuple(sample.shape[1:]), raw.num_classes, raw.vocab_size, sample.dtype)
    return True


def schema_stage(doc: Document) -> list[Problem]:
    """Lightning's ways of writing callbacks and loggers read as dtrain's (in place), then the schema's
    problems."""
    from declarative.spec.lightning_forms import read_lightning_forms

    return read_lightning_forms(doc) + schema_problems(doc)


def validate_document(doc: Document, *, semantic: bool = True):
    """A Document → a typed, checked Spec; raises SpecError with every problem found."""
    from declarative.spec.config import spec_from_document

    problems = schema_stage(doc)
    if problems:
        raise SpecError(problems)
    spec = spec_from_document(doc)
    if semantic:
        problems, spec = check_spec(spec)
        if problems:
            raise SpecError(problems)
    return spec


def load_spec(path: str | Path, overrides: Iterable[str] = (), *, semantic: bool = True):
    """Load, override and validate a spec file: the first three stages of the pipeline."""
    doc = apply_overrides(load_file(path), list(overrides))
    return validate_document(doc, semantic=semantic)


def spec_from_data(data: dict, origin: str, *, semantic: bool = True, overrides: Iterable[str] = ()):
    """A spec embedded elsewhere (a checkpoint, a run's spec.yaml already parsed), with command-line
    overrides applied → a checked Spec."""
    problem = plain_data_problem(data, origin)  # it did not come through the YAML loader and its limits
    if problem:
        raise SpecError(problem)
    doc = apply_overrides(Document(file=origin, data=data, positions={(): Location(origin)}), list(overrides))
    return validate_document(doc, semantic=semantic)
