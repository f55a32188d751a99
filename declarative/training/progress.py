"""What a run shows while it trains: a rich progress bar on a terminal, one line per epoch elsewhere.

The bar advances per batch (pure Python, no device work); the numbers beside it change only when
the trainer has already read them (logging steps and epoch ends), so showing them costs no sync.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from declarative.callbacks.base import Callback

__all__ = ["ProgressBar", "print_results", "metrics_text"]


def metrics_text(metrics: dict[str, float], names: list[str]) -> str:
    """`train/loss 0.1234  val/loss 0.2345`, for the names that have a value."""
    return "  ".join(f"{name} {metrics[name]:.4g}" for name in names if name in metrics)


def _epoch_text(trainer: Any) -> str:
    limit = trainer.settings.epochs_limit
    return f"epoch {trainer.current_epoch + 1}" + (f"/{limit}" if limit is not None else "")


class ProgressBar(Callback):
    """Training progress: a live rich bar when the console is a terminal, else one plain line per epoch."""

    def __init__(self, console: Console):
        self.console = console
        self.live = console.is_terminal
        self._progress: Progress | None = None
        self._main: TaskID | None = None  # the training (or test) bar
        self._eval: TaskID | None = None  # the validation bar, while validation runs

    # -- the live display ------------------------------------------------------------------

    def _start(self) -> Progress:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.fields[metrics]}"), console=self.console,
            )
            self._progress.start()
        return self._progress

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress, self._main, self._eval = None, None, None

    def _shown_names(self, trainer: Any) -> list[str]:
        return ["train/loss_step"] + trainer.logged_metric_names

    # -- hooks -----------------------------------------------------------------------------

    def on_validation_start(self, trainer: Any, model: Any) -> None:
        if self.live:
            total = (int(min(trainer.settings.sanity_steps, trainer.num_val_batches)) if trainer.sanity_checking
                     else trainer.num_val_batches)
            label = "sanity check" if trainer.sanity_checking else "validation"
            self._eval = self._start().add_task(label, total=total, metrics="")

    def on_validation_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._progress is not None and self._eval is not None:
            self._progress.advance(self._eval)

    def on_validation_end(self, trainer: Any, model: Any) -> None:
        if self._progress is not None and self._eval is not None:
            self._progress.remove_task(self._eval)
            self._eval = None

    def on_train_epoch_start(self, trainer: Any, model: Any) -> None:
        if not self.live:
            return
        progress = self._start()
        if self._main is None:
            self._main = progress.add_task(_epoch_text(trainer), total=trainer.num_train_batches, metrics="")
        else:
            progress.reset(self._main, total=trainer.num_train_batches, description=_epoch_text(trainer))

    def on_train_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._progress is None or self._main is None:
            return
        if trainer.log_step_due:  # values the trainer has just read: showing them costs nothing
            self._progress.update(self._main, advance=1,
                                  metrics=metrics_text(trainer.callback_metrics, self._shown_names(trainer)))
        else:
            self._progress.advance(self._main)

    def on_train_epoch_end(self, trainer: Any, model: Any) -> None:
        if self._progress is not None and self._main is not None:
            self._progress.update(self._main, metrics=metrics_text(trainer.callback_metrics,
                                                                   self._shown_names(trainer)))
        elif not self.live:
            line = metrics_text(trainer.callback_metrics, trainer.logged_metric_names)
            self.console.print(f"{_epoch_text(trainer)}  {line}".rstrip(), markup=False, highlight=False,
                               soft_wrap=True)

    def on_fit_end(self, trainer: Any, model: Any) -> None:
        self._stop()

    def on_test_start(self, trainer: Any, model: Any) -> None:
        if self.live:
            self._stop()
            self._main = self._start().add_task("test", total=trainer.num_test_batches, metrics="")

    def on_test_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._progress is not None and self._main is not None:
            self._progress.advance(self._main)

    def on_test_end(self, trainer: Any, model: Any) -> None:
        self._stop()

    def on_exception(self, trainer: Any, model: Any, exception: BaseException) -> None:
        self._stop()


def print_results(console: Console, metrics: dict[str, Any], title: str = "results") -> None:
    """A table of final metrics (`val/*`, `test/*`): per-class values one row per class, then each
    confusion matrix as a table of its own."""
    from declarative.loggers.base import scalar_items

    if not metrics:
        return
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)  # no column rules: `grep`-friendly rows
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in scalar_items(metrics):
        table.add_row(name, f"{value:.4f}")
    console.print(table)
    for name, value in metrics.items():
        if isinstance(value, list) and value and isinstance(value[0], list):
            per_label = isinstance(value[0][0], list)  # multilabel: one 2×2 matrix per label
            for index, matrix in enumerate(value if per_label else [value]):
                label = f" (label {index})" if per_label else ""
                console.print(f"{name}{label}: rows are targets, columns predictions", markup=False, highlight=False,
                              soft_wrap=True)
                console.print(_matrix_table(matrix))


def _matrix_table(matrix: list[list[float]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("")
    for column in range(len(matrix[0])):
        table.add_column(str(column), justify="right")
    for index, row in enumerate(matrix):
        table.add_row(str(index), *(f"{v:g}" for v in row))
    return table
