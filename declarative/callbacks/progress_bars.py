"""RichProgressBar and TQDMProgressBar: Lightning's progress bar callbacks, as settings of dtrain's one bar.

dtrain draws one rich bar on a terminal (one line per epoch elsewhere: declarative/training/progress.py).
Listing either callback replaces the default bar with one of these settings; with
`trainer.enable_progress_bar: false` listing one is an error, as in Lightning.
"""

from __future__ import annotations

from typing import Any

from declarative.training.progress import ProgressBar

__all__ = ["RichProgressBar", "TQDMProgressBar", "check_progress_bars"]


class RichProgressBar(ProgressBar):
    """The progress bar, with Lightning's RichProgressBar arguments.

    Args:
        refresh_rate: move the bar every this many batches (and at an epoch's last); 0 shows no progress. Default: 1
        leave: keep each finished epoch's bar on screen; false: the next epoch's bar takes its place. Default: False
        theme: rich styles by Lightning's RichProgressBarTheme names: description, progress_bar,
            progress_bar_finished, progress_bar_pulse, batch_progress, time, metrics (e.g. ``bold green``,
            ``"#6206E0"``), and metrics_format (e.g. ``.3f``) and metrics_text_delimiter. Default: None (rich's)
    """

    def __init__(self, refresh_rate: int = 1, leave: bool = False, theme: dict[str, str] | None = None):
        super().__init__(None, refresh_rate=refresh_rate, leave=leave, theme=theme)


class TQDMProgressBar(ProgressBar):
    """The progress bar, with Lightning's TQDMProgressBar arguments (dtrain draws it with rich, not tqdm).

    Args:
        refresh_rate: move the bar every this many batches (and at an epoch's last); 0 shows no progress. Default: 1
        process_position: tqdm's line offset for several bars at once; dtrain shows one bar, from process 0, so it
            changes nothing. Default: 0
        leave: keep each finished epoch's bar on screen; false: the next epoch's bar takes its place. Default: False
    """

    def __init__(self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False):
        if isinstance(process_position, bool) or not isinstance(process_position, int) or process_position < 0:
            raise ValueError(f"process_position must be an integer >= 0, but got {process_position!r}")
        super().__init__(None, refresh_rate=refresh_rate, leave=leave)
        self.process_position = process_position


def check_progress_bars(spec: Any, callbacks: list[Any]) -> None:
    """A located error, as Lightning raises one, for a bar listed beside `enable_progress_bar: false`, or two bars."""
    bars = [cb for cb in callbacks if isinstance(cb, ProgressBar)]
    if bars and not spec.trainer.enable_progress_bar:
        raise spec.error(("trainer", "enable_progress_bar"), f"enable_progress_bar is false, but callbacks lists a "
                                                             f"{type(bars[0]).__name__} — remove one of them")
    if len(bars) > 1:
        raise spec.error(bars[1].spec_path, f"callbacks lists {len(bars)} progress bars "
                                            f"({', '.join(type(cb).__name__ for cb in bars)}); a run shows one — keep one")
