"""TensorBoardLogger: event files in the run directory, written by TensorBoard's own writer."""

from __future__ import annotations

from typing import Any

from declarative.loggers.base import Logger, flatten_params, matrix_markdown, scalar_items

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger(Logger):
    """Log scalars and hyperparameters as TensorBoard event files (``tensorboard --logdir runs``)."""

    def __init__(self, save_dir: str):
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when a run logs

        self.save_dir = save_dir
        self.experiment = SummaryWriter(log_dir=save_dir)

    def log_hyperparams(self, params: dict[str, Any], metric_names: list[str]) -> None:
        """The HParams dashboard's record of this run, in the scalars' own event file (as Lightning writes it).

        `metric_names` tells the dashboard which scalar tags to show beside the settings.
        """
        from torch.utils.tensorboard.summary import hparams

        experiment, session_start, session_end = hparams(flatten_params(params), {n: 0.0 for n in metric_names})
        writer = self.experiment._get_file_writer()
        for summary in (experiment, session_start, session_end):
            writer.add_summary(summary)

    def purge(self, step: int) -> None:
        """A resumed run: TensorBoard hides what earlier files logged at `step` and after (the run logs it again)."""
        from torch.utils.tensorboard import SummaryWriter

        self.experiment.close()
        self.experiment = SummaryWriter(log_dir=self.save_dir, purge_step=step)

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        """Scalars; per-class values as `<name>/<class>` scalars; a confusion matrix as a text table."""
        for name, value in scalar_items(metrics):
            self.experiment.add_scalar(name, value, global_step=step)
        for name, value in metrics.items():
            if isinstance(value, list) and value and isinstance(value[0], list):
                self.experiment.add_text(name, matrix_markdown(value), global_step=step)

    def finalize(self, status: str) -> None:
        self.experiment.flush()
        self.experiment.close()
