"""The spec's loggers: checked before the run folder exists, built into it, the model's graph logged."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from declarative.loggers import LOGGERS
from declarative.spec.config import Component, Spec

__all__ = ["check_loggers", "build_loggers", "log_graphs"]


def check_loggers(spec: Spec) -> None:
    """Every problem `build_loggers` would find — an argument, a missing extra, two loggers writing the same
    files — as a located error, before the run folder is made (a rejected spec leaves none behind)."""
    build_loggers(spec, Path("."), start=False)  # loggers open nothing until they start


def build_loggers(spec: Spec, run_dir: Path, *, start: bool = True) -> list[Any]:
    """The spec's loggers, writing into the run folder `run_dir`; with `start`, those that log to a service
    (MLflow, W&B) start their run, and a service that refuses (no server there, no login) is a located error."""
    loggers, folders = [], {}
    for index, item in enumerate(spec.logger):
        component = Component.parse(item, ("logger", index))
        logger = LOGGERS.build_component(component, spec, **_injected(component.name, run_dir))
        key = (type(logger), getattr(logger, "log_dir", None))
        if key[1] is not None and key in folders:
            raise spec.error(component.path, f"this {component.name} writes into the same folder as logger[{folders[key]}]"
                                             " — give one of them a name or version (a sub-folder of the run folder)")
        folders[key] = index
        loggers.append(logger)
    for index, logger in enumerate(loggers if start else []):
        try:
            logger.start()
        except Exception as exc:  # the service's own error, whatever its type: the run has not begun
            for started in loggers[:index]:
                started.finalize("failed")
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            component = Component.parse(spec.logger[index], ("logger", index))
            raise spec.error(component.path, f"{component.name} could not start: {reason}") from None
    return loggers


def _injected(name: str, run_dir: Path) -> dict[str, str]:
    """What dtrain gives a logger: the run folder, as `save_dir` (TensorBoard, CSV) or for `log_model`."""
    params = LOGGERS[name].params
    return {"save_dir": str(run_dir)} if "save_dir" not in params else {"_run_dir": str(run_dir)}


def log_graphs(run: Any, loggers: list[Any], console: Any) -> None:
    """Each logger with `log_graph: true` gets the model's graph, traced once in eval mode on a batch of one zero
    sample of the data's shape and dtype, with the random generators put back: the run trains exactly as it
    would without it. `run` is the Assembly."""
    from declarative.training.strategies.fsdp import FSDPStrategy

    wanting = [logger for logger in loggers if getattr(logger, "log_graph", False)]
    if not wanting or isinstance(run.strategy, FSDPStrategy):  # process 0 alone cannot run a sharded forward
        return
    model, device = run.strategy.unwrap(run.model), run.strategy.root_device
    example = run.plugins.precision.convert_input(
        torch.zeros((1, *run.data.input_shape), dtype=run.data.input_dtype, device=device))
    training = model.training
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad(), \
                warnings.catch_warnings():
            # TensorBoard's add_graph traces with torch.jit.trace, which torch now marks deprecated: not the user's to fix
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
            model.eval()
            for logger in wanting:
                logger.log_graph_of(model, example)
    except Exception as exc:  # a model torch.jit.trace cannot follow: the run goes on without its graph
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        console.print(f"note: the model graph is left out of TensorBoard — tracing the model failed: {reason}",
                      markup=False, highlight=False)
    finally:
        model.train(training)
