"""Lightning's profilers (`trainer.profiler`): where fit and test spend their time, written into the run folder.

    simple    wall-clock per action (mean, calls, total, share of the stage), printed at the stage's end
              and written to <run>/fit-profile.txt (test-profile.txt for the test run)
    advanced  cProfile statistics per action (sorted by cumulative time) in <run>/fit-profile.txt
    pytorch   torch.profiler over a few training steps (wait 1, warm up 1, record 3): a trace in
              <run>/plugins/profile/*.pt.trace.json, the TensorBoard profiler's (torch-tb-profiler)
              format, and the operators' key_averages table in <run>/fit-profile.txt

Actions have Lightning's names: `training_step`, `backward`, `optimizer_step`, `validation_step`,
`test_step`, `[_TrainingEpochLoop].train_dataloader_next` (the wait for each batch) and
`[Callback]<Name>.<hook>`. The trainer wraps each in `profiler.profile(action)`; the pass-through
profiler (the default) returns one shared null context, so profiling off costs a method call.
Only process 0 profiles.
"""

from __future__ import annotations

import cProfile
import contextlib
import io
import pstats
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Iterator

__all__ = ["PROFILERS", "Profiler", "SimpleProfiler", "AdvancedProfiler", "PyTorchProfiler", "build_profiler"]

_NULL = contextlib.nullcontext()
FILENAME = "profile"  # <stage>-profile.txt, as Lightning's <dirpath>/<stage>-<filename>.txt


class Profiler:
    """Lightning's PassThroughProfiler: records nothing (the base class of the others)."""

    name = "none"

    def __init__(self) -> None:
        self.stage = "fit"
        self.dirpath: Path | None = None

    def start(self, stage: str, dirpath: Path | None) -> None:
        """A stage ("fit" or "test") begins; its report goes into `dirpath` (None: printed only)."""
        self.stage, self.dirpath = stage, dirpath

    def profile(self, action: str) -> ContextManager:
        return _NULL

    def profile_hook(self, callback: Any, hook: str) -> ContextManager:
        """A callback's hook, as Lightning names it: `[Callback]ModelCheckpoint.on_validation_end`."""
        return self.profile(f"[Callback]{type(callback).__qualname__}.{hook}") if self.name != "none" else _NULL

    def iterate(self, action: str, iterable: Iterable) -> Iterable:
        """The batches of `iterable`, each wait for the next one recorded as `action`."""
        return iterable

    def finish(self, say: Callable[[str], None]) -> None:
        """The stage is over: write its report (and say where)."""

    @property
    def output_path(self) -> Path | None:
        return self.dirpath / f"{self.stage}-{FILENAME}.txt" if self.dirpath is not None else None

    def _write(self, report: str, say: Callable[[str], None], *, show: bool) -> None:
        path = self.output_path
        if show:
            say(report)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(report + "\n", encoding="utf-8")
            say(f"profiler ({self.name}): {self.stage} report in {path}")


class _Timed(Profiler):
    """Iteration recorded through `profile`, as Lightning's profilers time `*_dataloader_next`."""

    def iterate(self, action: str, iterable: Iterable) -> Iterator:
        iterator = iter(iterable)
        while True:
            with self.profile(action):
                try:
                    item = next(iterator)
                except StopIteration:
                    return
            yield item


class SimpleProfiler(_Timed):
    """Lightning's SimpleProfiler: the wall-clock duration of every action."""

    name = "simple"

    def __init__(self) -> None:
        super().__init__()
        self.durations: dict[str, list[float]] = defaultdict(list)
        self._started = time.perf_counter()

    def start(self, stage: str, dirpath: Path | None) -> None:
        super().start(stage, dirpath)
        self.durations.clear()
        self._started = time.perf_counter()

    @contextlib.contextmanager
    def profile(self, action: str) -> Iterator[None]:
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.durations[action].append(time.perf_counter() - begin)

    def summary(self) -> str:
        total = time.perf_counter() - self._started
        rows = [("Total", "-", str(sum(len(d) for d in self.durations.values())), f"{total:.5f}", "100 %")]
        for action, times in sorted(self.durations.items(), key=lambda item: -sum(item[1])):
            spent = sum(times)
            rows.append((action, f"{spent / len(times):.5f}", str(len(times)), f"{spent:.5f}",
                         f"{100 * spent / total:.2f} %" if total > 0 else "-"))
        header = ("Action", "Mean duration (s)", "Num calls", "Total time (s)", "Percentage %")
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

        def line(cells: tuple) -> str:
            return "|  " + "  |  ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + "  |"

        rule = "-" * len(line(header))
        return "\n".join([f"{self.stage.upper()} Profiler Report", rule, line(header), rule,
                          *(line(row) for row in rows), rule])

    def finish(self, say: Callable[[str], None]) -> None:
        self._write(self.summary(), say, show=True)


class AdvancedProfiler(_Timed):
    """Lightning's AdvancedProfiler: cProfile statistics per action (an action inside another is left to the
    outer one: one cProfile runs at a time)."""

    name = "advanced"

    def __init__(self, line_count_restriction: int = 20) -> None:
        super().__init__()
        self.profiles: dict[str, cProfile.Profile] = {}
        self.line_count_restriction = line_count_restriction
        self._active = False

    def start(self, stage: str, dirpath: Path | None) -> None:
        super().start(stage, dirpath)
        self.profiles.clear()

    @contextlib.contextmanager
    def profile(self, action: str) -> Iterator[None]:
        if self._active:
            yield
            return
        profiler = self.profiles.setdefault(action, cProfile.Profile())
        self._active = True
        profiler.enable()
        try:
            yield
        finally:
            profiler.disable()
            self._active = False

    def summary(self) -> str:
        parts = [f"{self.stage.upper()} Profiler Report"]
        for action, profiler in self.profiles.items():
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).strip_dirs().sort_stats("cumulative").print_stats(
                self.line_count_restriction)
            parts.append(f"Profile stats for: {action}\n{text.getvalue().strip()}")
        return "\n\n".join(parts)

    def finish(self, say: Callable[[str], None]) -> None:
        self._write(self.summary(), say, show=self.dirpath is None)


class PyTorchProfiler(Profiler):
    """Lightning's PyTorchProfiler: torch.profiler over training steps 2-5 (wait 1, warm up 1, record 3), each
    action a record_function range in the trace."""

    name = "pytorch"

    def __init__(self, wait: int = 1, warmup: int = 1, active: int = 3, row_limit: int = 20) -> None:
        super().__init__()
        self.schedule = dict(wait=wait, warmup=warmup, active=active, repeat=1)
        self.row_limit = row_limit
        self._profiler: Any = None
        self._batches = 0  # training batches fetched in this stage

    @property
    def trace_dir(self) -> Path | None:
        """Where TensorBoard's profiler finds the traces: plugins/profile under the run's log folder."""
        return self.dirpath / "plugins" / "profile" if self.dirpath is not None else None

    def start(self, stage: str, dirpath: Path | None) -> None:
        import torch
        from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

        super().start(stage, dirpath)
        self._profiler, self._batches = None, 0
        if stage != "fit":  # the schedule counts training steps
            return
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        handler = tensorboard_trace_handler(str(self.trace_dir)) if self.trace_dir is not None else None
        self._profiler = profile(activities=activities, schedule=schedule(**self.schedule), on_trace_ready=handler)
        self._profiler.start()

    def profile(self, action: str) -> ContextManager:
        if self._profiler is None:
            return _NULL
        from torch.profiler import record_function

        return record_function(action)

    def iterate(self, action: str, iterable: Iterable) -> Iterator:
        """Each training batch after the first ends a profiler step (the schedule's unit)."""
        if self._profiler is None or "train" not in action:
            yield from iterable
            return
        for item in iterable:
            if self._batches:
                self._profiler.step()
            self._batches += 1
            yield item

    def finish(self, say: Callable[[str], None]) -> None:
        profiler, self._profiler = self._profiler, None
        if profiler is None:
            return
        profiler.stop()
        import torch

        sort_by = "cuda_time_total" if torch.cuda.is_available() else "cpu_time_total"
        try:
            table = profiler.key_averages().table(sort_by=sort_by, row_limit=self.row_limit)
        except (AssertionError, RuntimeError):  # no step was recorded (fewer than the schedule's steps)
            table = "no training step reached the profiler's recording steps"
        self._write(f"{self.stage.upper()} Profiler Report\n{table}", say, show=self.dirpath is None)
        if self.trace_dir is not None and self.trace_dir.is_dir():
            say(f"profiler (pytorch): traces in {self.trace_dir} (tensorboard --logdir with torch-tb-profiler "
                "installed shows them)")


PROFILERS: dict[str, type[Profiler]] = {"simple": SimpleProfiler, "advanced": AdvancedProfiler,
                                        "pytorch": PyTorchProfiler}


def build_profiler(name: str | None) -> Profiler:
    """The profiler `trainer.profiler` names; the pass-through one for none."""
    return PROFILERS[name]() if name else Profiler()
