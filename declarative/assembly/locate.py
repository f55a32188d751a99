"""Engine errors → located spec problems: the one place that knows which spec line built which input.

The engine raises `EngineError`s whose `where` names an input in its own terms (a setting, the
i-th metric, the i-th callback, a module by name, the loss); `Locator` holds, for one assembled
run, where the spec wrote each of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from declarative.errors import SpecError
from declarative.spec.config import Spec
from declarative.training.errors import EngineError, NonFiniteLossError, StepError, UnloggedMetricError
from declarative.training.tasks import TaskShapeError

__all__ = ["Locator"]


@dataclass
class Locator:
    """Where the spec wrote each input of one run.

    Args:
        spec: the resolved spec of the run.
        callback_paths: the spec path of each callback given to the Trainer, in order.
        module_paths: dotted module name in the model → the spec path of the layer that built it.
    """

    spec: Spec
    callback_paths: list[tuple] = field(default_factory=list)
    module_paths: dict[str, tuple] = field(default_factory=dict)

    def error(self, exc: EngineError) -> SpecError:
        """The located SpecError for an engine error."""
        return self.spec.error(self.path(exc), self.message(exc))

    def message(self, exc: EngineError) -> str:
        message = exc.message
        spec = self.spec
        if isinstance(exc, StepError) and isinstance(exc.__cause__, TaskShapeError):
            return str(exc.__cause__)  # the data does not fit the task: said at the task's line
        if isinstance(exc, UnloggedMetricError) and spec.task and not spec.task_written and not spec.metrics_written:
            origin = "its loss" if spec.loss_written else "the data"  # the metrics follow an inferred task
            message += f"; this run's task is {spec.task}, inferred from {origin} — name another with task:"
        if isinstance(exc, NonFiniteLossError):
            lr = spec.optimizer.kwargs.get("lr")
            message += f" (optimizer.{spec.optimizer.name}.lr is {lr})" if lr is not None else ""
        return message

    def path(self, exc: EngineError) -> tuple:
        where = exc.where
        kind = where[0] if where else None
        if kind == "callbacks" and len(where) >= 2 and where[1] < len(self.callback_paths):
            base = self.callback_paths[where[1]]
            arguments = where[2:]
            if arguments and base[:1] == ("callbacks",):
                return base + arguments
            return base
        if kind == "model":
            return self._module_path(where[1] if len(where) > 1 else "")
        if kind == "loss":
            if isinstance(exc, StepError) and isinstance(exc.__cause__, TaskShapeError):
                from declarative.assembly.tasks import task_path

                return task_path(spec=self.spec)  # outputs and targets that do not fit the task
            return ("loss",)
        if kind == "data":
            return ("data", where[1]) if len(where) > 1 and where[1] in ("val", "test") else ("data",)
        if isinstance(exc, NonFiniteLossError):
            return ("optimizer",)
        return where

    def _module_path(self, name: str) -> tuple:
        """The spec path of the innermost layer the module name falls in; the model's layers otherwise."""
        while name:
            if name in self.module_paths:
                return self.module_paths[name]
            name = name.rpartition(".")[0]
        return ("model", "layers")

    def raise_located(self, exc: BaseException) -> Any:
        """Re-raise an engine error as a located SpecError (anything else as it is)."""
        if isinstance(exc, EngineError):
            raise self.error(exc) from None
        raise exc
