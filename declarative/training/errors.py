"""What the engine raises about its inputs: plain exceptions that say *which* input, not where a file wrote it.

The engine knows nothing of specs. When a setting, a metric, a callback argument, the model or the
loss is at fault, it raises an `EngineError` whose `where` names that input in the engine's own
terms; the assembly layer (declarative/assembly/) maps `where` back to `file:line:col`.

    where                               the input at fault
    ("trainer", setting)                a Trainer setting, by its (Lightning) name
    ("metrics", index)                  the index-th metric of the run
    ("callbacks", index, *argument)     the index-th callback given to the Trainer, or one argument of it
    ("scheduler", "monitor")            the metric a ReduceLROnPlateau reads
    ("model", module_name)              the module (dotted name in the unwrapped model) that raised
    ("loss",)                           the loss module
    ("scheduler",)                      the LR scheduler's step
    ("data", stage)                     a batch of that stage (nothing else raised)
"""

from __future__ import annotations

__all__ = ["EngineError", "MisconfigurationError", "UnloggedMetricError", "StepError", "NonFiniteLossError",
           "is_peer_failure"]


class EngineError(Exception):
    """A problem with what the Trainer was given; `where` names the input (see the module doc)."""

    def __init__(self, message: str, where: tuple = ()):
        super().__init__(message)
        self.message = message
        self.where = tuple(where)

    def located(self, *prefix: object) -> "EngineError":
        """The same error, with `where` under `prefix` (a callback's index, say); returns self."""
        self.where = tuple(prefix) + self.where
        return self


class MisconfigurationError(EngineError):
    """Settings or components that cannot work together, found before the first training step."""


class UnloggedMetricError(MisconfigurationError):
    """A monitor (of a callback or scheduler) names a metric the run never logs."""


class StepError(EngineError):
    """A forward pass, loss, backward pass or scheduler step that raised during a stage.

    Attributes:
        stage: "sanity check", "train", "val" or "test".
        epoch, step: where the run was (0-based epoch, optimizer steps taken).
    """

    def __init__(self, message: str, where: tuple, *, stage: str, epoch: int, step: int):
        super().__init__(message, where)
        self.stage, self.epoch, self.step = stage, epoch, step


class NonFiniteLossError(EngineError):
    """The training loss became NaN or infinite."""

    def __init__(self, message: str, *, epoch: int, step: int):
        super().__init__(message, ("optimizer",))
        self.epoch, self.step = epoch, step


def is_peer_failure(exc: BaseException) -> bool:
    """Whether an exception comes from a collective whose other processes went away (gloo, NCCL): the
    consequence of another process's failure, which is what a user should be told about."""
    import torch.distributed as dist

    text = str(exc)
    return isinstance(exc, getattr(dist, "DistBackendError", ())) or any(
        word in text for word in ("Gloo", "gloo", "NCCL", "Connection closed", "Connection reset", "Broken pipe"))
