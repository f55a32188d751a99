"""TensorBoardLogger: event files in the run directory, written by TensorBoard's own writer."""

from __future__ import annotations

from typing import Any

from declarative.loggers.base import (Logger, add_prefix, flatten_params, log_folder, matrix_markdown, scalar_items,
                                      write_hparams_yaml)

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger(Logger):
    """Log scalars and hyperparameters as TensorBoard event files (``tensorboard --logdir runs``).

    Lightning writes to ``save_dir/name/version``; here the run folder (``runs/<spec name>/version_<N>``)
    is that place already, so the files go into it, and ``name``, ``version`` and ``sub_dir``, when given,
    are sub-folders of it: ``<run folder>/<name>/<version>/<sub_dir>``.

    Args:
        name: A sub-folder of the run folder for this logger's files (Lightning's experiment name); none by default.
        version: A sub-folder below `name`: an int N is ``version_N``, a string is the folder's name.
        log_graph: Add the model's graph, traced once on an example input of the data's shape, before training.
        default_hp_metric: Log the placeholder scalar ``hp_metric`` = -1 and list it among the HParams dashboard's
            metrics, as Lightning does; false leaves it out (the dashboard lists the run's own metrics either way).
        prefix: Put ``<prefix>-`` before every metric name.
        sub_dir: A last sub-folder for the event files.
        max_queue: Events queued before the writer flushes them to disk (TensorBoard's SummaryWriter).
        flush_secs: Seconds between the writer's flushes to disk (TensorBoard's SummaryWriter).
    """

    def __init__(self, save_dir: str, name: str | None = None, version: int | str | None = None,
                 log_graph: bool = False, default_hp_metric: bool = True, prefix: str = "",
                 sub_dir: str | None = None, max_queue: int = 10, flush_secs: int = 120):
        self.save_dir = save_dir
        self.log_dir = log_folder(save_dir, name, version, sub_dir)
        self.log_graph = log_graph
        self.default_hp_metric = default_hp_metric
        self.prefix = prefix
        self._writer_args = {"max_queue": max_queue, "flush_secs": flush_secs}
        self._experiment = None
        self._purge_step: int | None = None

    @property
    def experiment(self):
        """TensorBoard's SummaryWriter, made on first use: a spec that a check rejects leaves no file behind."""
        if self._experiment is None:
            from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when a run logs

            self._experiment = SummaryWriter(log_dir=str(self.log_dir), purge_step=self._purge_step,
                                             **self._writer_args)
        return self._experiment

    def log_hyperparams(self, params: dict[str, Any], metric_names: list[str]) -> None:
        """The HParams dashboard's record of this run, in the scalars' own event file (as Lightning writes it),
        and hparams.yaml beside it.

        `metric_names` tells the dashboard which scalar tags to show beside the settings.
        """
        from torch.utils.tensorboard.summary import hparams

        names = list(add_prefix(dict.fromkeys(metric_names), self.prefix))
        if self.default_hp_metric:
            names.append("hp_metric")
        experiment, session_start, session_end = hparams(flatten_params(params), dict.fromkeys(names, 0.0))
        writer = self.experiment._get_file_writer()
        for summary in (experiment, session_start, session_end):
            writer.add_summary(summary)
        if self.default_hp_metric:
            self.experiment.add_scalar("hp_metric", -1, global_step=0)
        write_hparams_yaml(self.log_dir, params)

    def log_graph_of(self, model: Any, example_input: Any) -> None:
        """The model's graph, traced on `example_input` (Lightning's `log_graph` with `example_input_array`)."""
        self.experiment.add_graph(model, example_input)

    def purge(self, step: int) -> None:
        """A resumed run: TensorBoard hides what earlier files logged at `step` and after (the run logs it again)."""
        if self._experiment is not None:
            self._experiment.close()
            self._experiment = None
        self._purge_step = step

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        """Scalars; per-class values as `<name>/<class>` scalars; a confusion matrix as a text table."""
        metrics = add_prefix(metrics, self.prefix)
        for name, value in scalar_items(metrics):
            self.experiment.add_scalar(name, value, global_step=step)
        for name, value in metrics.items():
            if isinstance(value, list) and value and isinstance(value[0], list):
                self.experiment.add_text(name, matrix_markdown(value), global_step=step)

    def finalize(self, status: str) -> None:
        if self._experiment is not None:
            self._experiment.flush()
            self._experiment.close()
