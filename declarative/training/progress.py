"""What a run shows while it trains: a rich progress bar on a terminal, one line per epoch elsewhere.

The bar moves every `refresh_rate` batches (pure Python, no device work) and is drawn at most ten
times a second (a frame costs milliseconds); the numbers beside it change only when the trainer has
already read them (logging steps and epoch ends), so showing them costs no sync. Lightning's
RichProgressBar and TQDMProgressBar callbacks (declarative/callbacks/progress_bars.py) are settings of it.
"""

from __future__ import annotations

import time
from typing import Any

from rich import box
from rich.console import Console
from rich.errors import StyleSyntaxError
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TaskID, TextColumn,
                           TimeElapsedColumn)
from rich.style import Style
from rich.table import Table
from rich.text import Text


__all__ = ["ProgressBar", "print_results", "metrics_text"]


def metrics_text(metrics: dict[str, float], names: list[str], number_format: str = ".4g", delimiter: str = "  ") -> str:
    """`train/loss 0.1234  val/loss 0.2345`, for the names that have a value."""
    return delimiter.join(f"{name} {format(metrics[name], number_format)}" for name in names if name in metrics)


def _epoch_text(trainer: Any) -> str:
    limit = trainer.settings.epochs_limit
    return f"epoch {trainer.current_epoch + 1}" + (f"/{limit}" if limit is not None else "")


# Lightning's RichProgressBarTheme fields: rich styles, and how the metrics read (processing_speed: dtrain's bar
# shows no speed column).
THEME_STYLES = ("description", "progress_bar", "progress_bar_finished", "progress_bar_pulse", "batch_progress", "time",
                "processing_speed", "metrics")
THEME_FIELDS = THEME_STYLES + ("metrics_text_delimiter", "metrics_format")


class _Styled(ProgressColumn):
    """A rich column drawn in a theme's style."""

    def __init__(self, column: ProgressColumn, style: str):
        super().__init__()
        self.column, self.style = column, style

    def render(self, task: Task) -> Text:
        text = self.column.render(task)
        text.stylize(self.style)
        return text


class ProgressBar:
    """Training progress: a live rich bar when the console is a terminal, else one plain line per epoch.

    A callback by its hook names (no import of declarative.callbacks: the callbacks package lists its subclasses).

    Args:
        console: where it draws (default: the trainer's, at setup).
        refresh_rate: move the bar every this many batches (and at the last); 0 shows no progress at all.
        leave: keep each finished epoch's bar on screen (false: the next epoch's bar takes its place).
        theme: rich styles for the bar's parts, by Lightning's RichProgressBarTheme names (THEME_FIELDS).
    """

    min_frame_seconds = 0.1  # draw at most this often: a frame costs milliseconds, a training step may cost less

    def __init__(self, console: Console | None = None, refresh_rate: int = 1, leave: bool = False,
                 theme: dict[str, str] | None = None):
        if isinstance(refresh_rate, bool) or not isinstance(refresh_rate, int) or refresh_rate < 0:
            raise ValueError(f"refresh_rate must be an integer >= 0 (0: no progress shown), but got {refresh_rate!r}")
        self.theme = _checked_theme(theme or {})
        self.console = console
        self.refresh_rate = refresh_rate
        self.leave = leave
        self._progress: Progress | None = None
        self._main: TaskID | None = None  # the training (or test) bar
        self._eval: TaskID | None = None  # the validation bar, while validation runs
        self._drawn = 0.0  # time.monotonic() of the last frame
        self._totals: dict[TaskID, int] = {}  # each bar's batch count

    @property
    def live(self) -> bool:
        return self.refresh_rate > 0 and self.console is not None and self.console.is_terminal

    def setup(self, trainer: Any, model: Any, stage: str) -> None:
        if self.console is None:
            self.console = trainer.console

    # -- the live display ------------------------------------------------------------------

    def _start(self) -> Progress:
        if self._progress is None:
            theme = self.theme
            self._progress = Progress(
                TextColumn("{task.description}", style=theme.get("description", "none")),
                BarColumn(complete_style=theme.get("progress_bar", "bar.complete"),
                          finished_style=theme.get("progress_bar_finished", "bar.finished"),
                          pulse_style=theme.get("progress_bar_pulse", "bar.pulse")),
                _Styled(MofNCompleteColumn(), theme.get("batch_progress", "none")),
                _Styled(TimeElapsedColumn(), theme.get("time", "none")),
                TextColumn("{task.fields[metrics]}", style=theme.get("metrics", "none")),
                console=self.console, auto_refresh=False,  # frames are drawn as batches end (`_advance`)
            )
            self._progress.start()
        return self._progress

    def _add(self, description: str, total: int) -> TaskID:
        task = self._start().add_task(description, total=total, metrics="")
        self._totals[task] = total
        return task

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress, self._main, self._eval = None, None, None
        self._totals = {}

    def _advance(self, task: TaskID | None, done: int, **fields: Any) -> None:
        """`done` batches of `task` are over: move the bar every refresh_rate batches and at the last one."""
        progress = self._progress
        if progress is None or task is None:
            return
        total = self._totals[task]
        if done % self.refresh_rate and done != total:
            if fields:
                progress.update(task, **fields)
            return
        progress.update(task, completed=done, **fields)
        now = time.monotonic()
        if done == total or now - self._drawn >= self.min_frame_seconds:
            progress.refresh()
            self._drawn = now

    def _metrics(self, metrics: dict[str, Any], names: list[str]) -> str:
        return metrics_text(metrics, names, self.theme.get("metrics_format", ".4g"),
                            self.theme.get("metrics_text_delimiter", "  "))

    def _shown_names(self, trainer: Any) -> list[str]:
        return ["train/loss_step"] + trainer.logged_metric_names

    # -- hooks -----------------------------------------------------------------------------

    def on_validation_start(self, trainer: Any, model: Any) -> None:
        if self.live:
            total = (int(min(trainer.settings.sanity_steps, trainer.num_val_batches)) if trainer.sanity_checking
                     else trainer.num_val_batches)
            label = "sanity check" if trainer.sanity_checking else "validation"
            self._eval = self._add(label, total)

    def on_validation_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._advance(self._eval, batch_idx + 1)

    def on_validation_end(self, trainer: Any, model: Any) -> None:
        if self._progress is not None and self._eval is not None:
            self._progress.remove_task(self._eval)
            self._eval = None

    def on_train_epoch_start(self, trainer: Any, model: Any) -> None:
        if not self.live:
            return
        if self._main is None or self.leave:  # leave: the finished epoch's bar stays, the new one goes below it
            self._main = self._add(_epoch_text(trainer), trainer.num_train_batches)
        else:
            self._start().reset(self._main, total=trainer.num_train_batches, description=_epoch_text(trainer))
            self._totals[self._main] = trainer.num_train_batches

    def on_train_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._progress is None or self._main is None:
            return
        if trainer.log_step_due:  # values the trainer has just read: showing them costs nothing
            self._advance(self._main, batch_idx + 1, metrics=self._metrics(trainer.callback_metrics,
                                                                            self._shown_names(trainer)))
        else:
            self._advance(self._main, batch_idx + 1)

    def on_train_epoch_end(self, trainer: Any, model: Any) -> None:
        if self._progress is not None and self._main is not None:
            self._progress.update(self._main, metrics=self._metrics(trainer.callback_metrics,
                                                                    self._shown_names(trainer)))
            self._progress.refresh()
        elif self.refresh_rate and self.console is not None and not self.live:
            line = self._metrics(trainer.callback_metrics, trainer.logged_metric_names)
            self.console.print(f"{_epoch_text(trainer)}  {line}".rstrip(), markup=False, highlight=False,
                               soft_wrap=True)

    def on_fit_end(self, trainer: Any, model: Any) -> None:
        self._stop()

    def on_test_start(self, trainer: Any, model: Any) -> None:
        if self.live:
            self._stop()
            self._main = self._add("test", trainer.num_test_batches)

    def on_test_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._advance(self._main, batch_idx + 1)

    def on_test_end(self, trainer: Any, model: Any) -> None:
        self._stop()

    def on_exception(self, trainer: Any, model: Any, exception: BaseException) -> None:
        self._stop()


def _checked_theme(theme: dict[str, str]) -> dict[str, str]:
    """The theme, each style one rich can draw (a ValueError naming the field otherwise)."""
    for field, value in theme.items():
        if field not in THEME_FIELDS:
            raise ValueError(f"theme has no field {field!r} — Lightning's RichProgressBarTheme has: "
                             + ", ".join(THEME_FIELDS))
        if field in THEME_STYLES:
            try:
                Style.parse(str(value))
            except StyleSyntaxError as exc:
                raise ValueError(f"theme {field}: {value!r} is not a rich style ({exc}) — e.g. 'bold green' or "
                                 "'#6206E0'") from None
        elif field == "metrics_format":
            try:
                format(0.5, str(value))
            except ValueError as exc:
                raise ValueError(f"theme metrics_format: {value!r} is not a number format ({exc}) — e.g. '.3f'") from None
    return dict(theme)


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
