"""The spec as typed objects.

Right after validation the raw tree becomes these dataclasses; later stages never touch raw
dicts. Each named component keeps the path it was written at, so a stage that finds a problem
(a missing data file, a shape that does not fit) reports it at the spec's own line.
`Spec.to_dict()` gives the resolved spec that a run records and a checkpoint embeds.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from declarative.errors import Location, Problem, SpecError
from declarative.registry import parse_item
from declarative.spec.document import Document, PathKey
from declarative.training.settings import TrainerSettings, setting

# Keyword arguments of data sources that name files or folders; a relative one is relative to
# the spec file's folder, so that a spec runs the same from any working directory.
PATH_ARGUMENTS = ("path", "root")


@dataclass
class Component:
    """A registry entry as the spec names it: `{Name: {kwargs}}` written at `path`."""

    name: str
    kwargs: dict[str, Any]
    path: PathKey
    # keys written beside the name: a layer item's name / input / output, an optimizer's param_groups
    wiring: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, item: str | dict, path: PathKey) -> "Component":
        name, kwargs = parse_item(item)
        return cls(name, kwargs, tuple(path))

    @classmethod
    def parse_layer(cls, item: str | dict, path: PathKey) -> "Component":
        """A layer item: one layer name, with its wiring keys (name, input, output) beside it."""
        from declarative.model.syntax import split_item

        name, kwargs, wiring = split_item(item)
        return cls(name, dict(kwargs or {}), tuple(path), wiring)

    def to_yaml(self) -> str | dict:
        if self.wiring:
            return {self.name: dict(self.kwargs) or None, **self.wiring}
        return {self.name: dict(self.kwargs)} if self.kwargs else self.name


@dataclass
class Split:
    """Where a validation or test split comes from: a seeded fraction of the training split,
    a split the source itself has (`split: test`), or a source of its own."""

    fraction: float | None = None
    split: str | None = None
    source: Component | None = None
    path: PathKey = ()
    stratify: bool = False  # with a fraction: each class keeps its share of the samples
    order: Literal["random", "last"] = "random"  # with a fraction: a seeded draw, or the last samples in order

    def to_yaml(self) -> dict:
        if self.fraction is not None:
            out: dict[str, Any] = {"fraction": self.fraction}
            if self.stratify:
                out["stratify"] = True
            if self.order != "random":
                out["order"] = self.order
            return out
        if self.split is not None:
            return {"split": self.split}
        return {"source": self.source.to_yaml()}


@dataclass
class DataConfig:
    source: Component
    val: Split | None = None
    test: Split | None = None
    transforms: list[Component] = field(default_factory=list)
    train_transforms: list[Component] = field(default_factory=list)  # augmentation, before `transforms`
    batch_transforms: list[Component] = field(default_factory=list)  # MixUp / CutMix of training batches
    eval_transforms: list[Component] = field(default_factory=list)  # val and test only, before `transforms`
    targets: Literal["targets", "inputs"] = "targets"  # inputs: each sample is its own target (autoencoders)
    batch_size: int = 32
    eval_batch_size: int | None = None  # val and test; None: batch_size
    loader: Literal["auto", "memory", "dataloader"] = "auto"
    num_workers: int | None = None  # DataLoader settings; None: chosen at run time
    pin_memory: bool | None = None
    persistent_workers: bool | None = None
    drop_last: bool = False  # drop the training split's last batch when it is short (as DataLoader's drop_last)
    check_finite: bool = True  # a NaN or infinite value in the data stops the run before training
    path: PathKey = ("data",)

    LOADER_SETTINGS = ("loader", "num_workers", "pin_memory", "persistent_workers")


@dataclass
class ModelConfig:
    input: list[int] | str  # a sample's shape, `auto` (the data's), or with ${data.input_shape} references
    layers: list[Component]
    blocks: dict[str, dict] = field(default_factory=dict)  # reusable blocks: name → {params, layers}
    init: dict[str, dict] = field(default_factory=dict)  # layer type → {parameter: initializer}
    data: Any = None  # the DataInfo that ${data.*} references and `auto` read, once resolved
    skipped: bool = False  # validation could not read the data those values come from
    init_from: dict | None = None  # warm start: {path (absolute), strict, prefix}; declarative/model/init_from.py


@dataclass
class SchedulerConfig:
    """An LR scheduler and when it steps, as Lightning's lr_scheduler config says it."""

    scheduler: Component
    interval: Literal["epoch", "step"] = "epoch"
    frequency: int = 1
    monitor: str = "val/loss"  # read by ReduceLROnPlateau

    def to_yaml(self) -> dict:
        out = {self.scheduler.name: dict(self.scheduler.kwargs) or None}
        out.update(interval=self.interval, frequency=self.frequency)
        if self.scheduler.name == "ReduceLROnPlateau":
            out["monitor"] = self.monitor
        return out


@dataclass
class TrainerConfig(TrainerSettings):
    """The spec's `trainer:` section: Lightning's Trainer arguments. The loop's own (TrainerSettings) go to
    the Trainer; these choose the plugins, the processes and where runs go, before a Trainer exists."""

    accelerator: str = setting("auto", "Hardware to train on: auto (a GPU when there is one), cpu, gpu, cuda, mps, tpu.")
    devices: Union[Literal["auto"], int, list[int]] = setting(
        "auto", "Devices per node: auto (every visible one; one process on the CPU), a count N, -1 (all), or a "
                "list of indices. On the CPU, N processes.")
    num_nodes: int = setting(1, "Machines the run spans (each started by torchrun or srun).", minimum=1)
    strategy: Union[str, dict] = setting(
        "auto", "How processes share the work: auto (ddp for several devices), single_device, ddp, fsdp, xla, or "
                "a one-key mapping of one of them to torch's own arguments.")
    sync_batchnorm: bool = setting(False, "Synchronise BatchNorm statistics across processes (SyncBatchNorm).")
    enable_model_summary: bool = setting(True, "Print the model's layers, output shapes and parameter counts when "
                                               "fit starts (what `dtrain summary` prints).")
    precision: Union[str, int] = setting("32-true", "Numeric precision, with Lightning's names: 32-true (32), 64-true "
                                                    "(64), autocast mixed precision 16-mixed (16) or bf16-mixed (bf16), "
                                                    "or all-half 16-true / bf16-true.")
    channels_last: bool = setting(False, "Weights and image batches in channels_last memory format (NHWC), as "
                                         "torchvision's classification recipe trains.")
    deterministic: Union[bool, Literal["warn"]] = setting(
        False, "Use deterministic algorithms (torch.use_deterministic_algorithms); warn: only warn where an "
               "operation has none.")
    benchmark: Union[bool, None] = setting(None, "cuDNN's autotuner (torch.backends.cudnn.benchmark): faster "
                                                 "convolutions for fixed input sizes; none leaves torch's default.")
    num_threads: Union[Literal["auto"], int] = setting(
        "auto", "torch's CPU threads (torch.set_num_threads); auto: the CPUs this process may use (affinity, "
                "cgroup quota).", minimum=1)
    default_root_dir: str = setting("runs", "Runs go to <default_root_dir>/<name>/version_<N>/ (relative to the "
                                            "working directory).")

    def settings(self) -> TrainerSettings:
        """The loop's settings alone, for the Trainer."""
        return TrainerSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TrainerSettings)})

    @property
    def strategy_name(self) -> str:
        return self.strategy if isinstance(self.strategy, str) else next(iter(self.strategy))

    @property
    def strategy_kwargs(self) -> dict[str, Any]:
        return {} if isinstance(self.strategy, str) else dict(next(iter(self.strategy.values())) or {})


@dataclass
class Spec:
    name: str
    seed: int
    data: DataConfig
    model: ModelConfig
    loss: Component | None  # None: the task's default, filled in by `resolve_task`
    optimizer: Component
    trainer: TrainerConfig
    metrics: list[str | dict] | None = None  # `accuracy` or `{accuracy: {top_k: 5}}`; None: the task's default
    task: str | None = None  # multiclass, binary, multilabel, regression, segmentation; None: not yet inferred
    scheduler: SchedulerConfig | None = None
    callbacks: list[Component] = field(default_factory=list)
    logger: list[str | dict] = field(default_factory=list)  # logger names, or {Name: {kwargs}}
    description: str | None = None  # free text kept with the run (spec.yaml, checkpoints, hyperparameters)
    document: Document | None = field(default=None, repr=False, compare=False)

    def _written(self, key: str) -> bool:
        """Whether the spec itself wrote `key` (rather than leaving it to a default or to inference)."""
        return self.document is not None and isinstance(self.document.data, dict) and key in self.document.data

    @property
    def task_written(self) -> bool:
        return self._written("task")

    @property
    def loss_written(self) -> bool:
        return self._written("loss")

    @property
    def metrics_written(self) -> bool:
        return self._written("metrics")

    def problem(self, path: PathKey, message: str, *, key: bool = False) -> Problem:
        """A problem found by a later stage, located at the spec line it came from."""
        if self.document is None:
            return Problem(Location(self.name), message)
        return self.document.problem(path, message, key=key)

    def error(self, path: PathKey, message: str, *, key: bool = False) -> SpecError:
        return SpecError(self.problem(path, message, key=key))

    def _model_dict(self) -> dict:
        model_input = self.model.input
        out: dict[str, Any] = {"input": list(model_input) if isinstance(model_input, (list, tuple)) else model_input}
        if self.model.blocks:
            out["blocks"] = self.model.blocks
        if self.model.init:
            out["init"] = self.model.init
        out["layers"] = [c.to_yaml() for c in self.model.layers]
        if self.model.init_from is not None:
            out["init_from"] = self.model.init_from
        return out

    def to_dict(self) -> dict:
        """The resolved spec: what was written, plus defaults, the seed and absolute data paths."""
        data: dict[str, Any] = {"source": self.data.source.to_yaml()}
        if self.data.val:
            data["val"] = self.data.val.to_yaml()
        if self.data.test:
            data["test"] = self.data.test.to_yaml()
        if self.data.transforms:
            data["transforms"] = [t.to_yaml() for t in self.data.transforms]
        if self.data.train_transforms:
            data["train_transforms"] = [t.to_yaml() for t in self.data.train_transforms]
        if self.data.batch_transforms:
            data["batch_transforms"] = [t.to_yaml() for t in self.data.batch_transforms]
        if self.data.eval_transforms:
            data["eval_transforms"] = [t.to_yaml() for t in self.data.eval_transforms]
        if self.data.targets != "targets":
            data["targets"] = self.data.targets
        data["batch_size"] = self.data.batch_size
        if self.data.eval_batch_size is not None:
            data["eval_batch_size"] = self.data.eval_batch_size
        for name in DataConfig.LOADER_SETTINGS:  # what the spec set; the rest is chosen at run time
            value = getattr(self.data, name)
            if value is not None and value != "auto":
                data[name] = value
        data.update({k: v for k, v in (("drop_last", self.data.drop_last), ("check_finite", self.data.check_finite))
                     if v != getattr(DataConfig, k)})
        out: dict[str, Any] = {
            "name": self.name,
            **({"description": self.description} if self.description is not None else {}),
            "seed": self.seed,
            "data": data,
            "model": self._model_dict(),
        }
        if self.task is not None:
            out["task"] = self.task
        if self.loss is not None:
            out["loss"] = self.loss.to_yaml()
        if self.metrics is not None:
            out["metrics"] = list(self.metrics)
        out["optimizer"] = self.optimizer.to_yaml()
        if self.scheduler:
            out["scheduler"] = self.scheduler.to_yaml()
        out["trainer"] = dataclasses.asdict(self.trainer)
        out["callbacks"] = [c.to_yaml() for c in self.callbacks]
        out["logger"] = list(self.logger) if self.logger else False
        return out


DEFAULT_LOGGERS = ["TensorBoardLogger", "CSVLogger"]


def _absolute_paths(source: Component, base: Path) -> Component:
    kwargs = dict(source.kwargs)
    for key in PATH_ARGUMENTS:
        if isinstance(kwargs.get(key), str):
            path = Path(kwargs[key]).expanduser()
            kwargs[key] = str(path if path.is_absolute() else (base / path).resolve())
    return Component(source.name, kwargs, source.path)


def _init_from(raw: str | dict | None, base: Path) -> dict | None:
    """model.init_from as {path, strict, prefix}, its path made absolute (relative to the spec's folder)."""
    if raw is None:
        return None
    given = {"path": raw} if isinstance(raw, str) else dict(raw)
    path = Path(given["path"]).expanduser()
    return {"path": str(path if path.is_absolute() else (base / path).resolve()),
            "strict": bool(given.get("strict", True)), "prefix": dict(given.get("prefix") or {})}


def _split(raw: dict | None, path: PathKey, base: Path) -> Split | None:
    if raw is None:
        return None
    source = raw.get("source")
    return Split(
        fraction=raw.get("fraction"),
        split=raw.get("split"),
        source=_absolute_paths(Component.parse(source, path + ("source",)), base) if source is not None else None,
        path=path,
        stratify=bool(raw.get("stratify", False)),
        order=raw.get("order", "random"),
    )


def _optimizer(raw: str | dict) -> Component:
    """The optimizer by name, with its `param_groups` (declarative.assembly.param_groups) beside it."""
    if not isinstance(raw, dict) or "param_groups" not in raw:
        return Component.parse(raw, ("optimizer",))
    rest = {k: v for k, v in raw.items() if k != "param_groups"}
    component = Component.parse(rest, ("optimizer",))
    component.wiring = {"param_groups": raw["param_groups"]}
    return component


def spec_from_document(doc: Document) -> Spec:
    """Typed spec from a document that has passed the schema stage."""
    raw = doc.data
    base = doc.directory
    d = raw["data"]
    data = DataConfig(
        source=_absolute_paths(Component.parse(d["source"], ("data", "source")), base),
        val=_split(d.get("val"), ("data", "val"), base),
        test=_split(d.get("test"), ("data", "test"), base),
        transforms=[Component.parse(t, ("data", "transforms", i)) for i, t in enumerate(d.get("transforms") or [])],
        train_transforms=[Component.parse(t, ("data", "train_transforms", i))
                          for i, t in enumerate(d.get("train_transforms") or [])],
        batch_transforms=[Component.parse(t, ("data", "batch_transforms", i))
                          for i, t in enumerate(d.get("batch_transforms") or [])],
        eval_transforms=[Component.parse(t, ("data", "eval_transforms", i))
                         for i, t in enumerate(d.get("eval_transforms") or [])],
        targets=d.get("targets", "targets"),
        batch_size=d.get("batch_size", 32),
        eval_batch_size=d.get("eval_batch_size"),
        **{k: d[k] for k in (*DataConfig.LOADER_SETTINGS, "drop_last", "check_finite") if k in d},
    )
    m = raw["model"]
    model_input = m.get("input", "auto")
    model = ModelConfig(
        input=list(model_input) if isinstance(model_input, list) else model_input,
        layers=[Component.parse_layer(layer, ("model", "layers", i)) for i, layer in enumerate(m["layers"])],
        blocks=dict(m.get("blocks") or {}),
        init=dict(m.get("init") or {}),
        init_from=_init_from(m.get("init_from"), base),
    )
    scheduler = None
    if raw.get("scheduler"):
        s = dict(raw["scheduler"])
        settings = {k: s.pop(k) for k in ("interval", "frequency", "monitor") if k in s}
        (name, kwargs), = s.items()
        scheduler = SchedulerConfig(Component(name, dict(kwargs or {}), ("scheduler",)), **settings)
    logger = raw.get("logger", True)
    if logger is True:
        logger = list(DEFAULT_LOGGERS)
    elif logger is False:
        logger = []
    seed = raw.get("seed")
    if seed is None:  # an unseeded run still records the seed it drew, so it can be repeated
        seed = random.SystemRandom().randrange(2**31)
    return Spec(
        name=raw.get("name") or Path(doc.file).stem,
        description=raw.get("description"),
        seed=seed,
        data=data,
        model=model,
        loss=Component.parse(raw["loss"], ("loss",)) if "loss" in raw else None,
        optimizer=_optimizer(raw["optimizer"]),
        trainer=TrainerConfig(**(raw.get("trainer") or {})),
        metrics=list(raw["metrics"] or []) if "metrics" in raw else None,
        task=raw.get("task"),
        scheduler=scheduler,
        callbacks=[Component.parse(c, ("callbacks", i)) for i, c in enumerate(raw.get("callbacks") or [])],
        logger=list(logger),
        document=doc,
    )
