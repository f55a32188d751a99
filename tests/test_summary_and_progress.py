"""ModelSummary / RichModelSummary and RichProgressBar / TQDMProgressBar, as a user sees them: the printed
summary table and the frames the progress bar draws on a terminal."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from declarative.errors import SpecError
from declarative.training.progress import ProgressBar
from trainer_specs import BASE, quiet, run

# The tiny spec with a residual block: rows at depth 1 are the items of model.layers, at depth 2 also its insides.
NESTED = BASE.replace("""    - Linear: {out_features: 16}
    - ReLU
""", """    - Linear: {out_features: 16}
    - residual:
        layers: [ReLU, {Linear: {out_features: 16}}]
    - ReLU
""")


def summary_rows(console: Console) -> list[str]:
    """The layer column of the printed summary table."""
    rows = re.findall(r"^│ (\S*) +│ (.+?) +│", console.file.getvalue(), re.MULTILINE)
    return [f"{number} {layer.strip()}".strip() for number, layer in rows if layer.strip() != "layer"]


@pytest.mark.parametrize("callback, rows", [
    ("{ModelSummary: {max_depth: 1}}", ["input", "0 Linear (in_features=4)", "1 residual", "2 ReLU",
                                        "3 Linear (in_features=16)"]),
    ("{RichModelSummary: {max_depth: 2}}", ["input", "0 Linear (in_features=4)", "1 residual",
                                            "1.layers.0 ReLU", "1.layers.1 Linear (in_features=16)", "2 ReLU",
                                            "3 Linear (in_features=16)"]),
])
def test_a_model_summary_callback_prints_the_table_once_at_its_depth(tmp_path, callback, rows):
    console = quiet()
    run(tmp_path, "trainer.max_epochs=1", f"callbacks=[{callback}]", console=console, text=NESTED)
    assert summary_rows(console) == rows
    assert console.file.getvalue().count("Total params") == 1  # it replaces the default summary


def test_model_summary_depth_zero_prints_none_and_minus_one_prints_all(tmp_path):
    console = quiet()
    run(tmp_path, "trainer.max_epochs=1", "callbacks=[{ModelSummary: {max_depth: 0}}]", console=console, text=NESTED)
    assert "Total params" not in console.file.getvalue()
    console = quiet()  # listed, it prints even beside enable_model_summary: false, as in Lightning
    run(tmp_path, "trainer.max_epochs=1", "trainer.enable_model_summary=false",
        "callbacks=[{ModelSummary: {max_depth: -1}}]", console=console, text=NESTED)
    assert "1.layers.1 Linear (in_features=16)" in summary_rows(console)


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
FRAME_START = re.compile(r"\r\x1b\[2K(?:\x1b\[1A\x1b\[2K)*")  # rich's live display: back to the top, erase


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=150)


def frames(console: Console) -> list[str]:
    """Each frame the live display drew, as plain text."""
    return [ANSI.sub("", part) for part in FRAME_START.split(console.file.getvalue())[1:]]


def epoch_counts(frame: str) -> list[tuple[int, int]]:
    """(epoch, batches done) for each training bar in a frame."""
    return [(int(e), int(n)) for e, n in re.findall(r"epoch (\d)/2 \S+ (\d)/3", frame)]


def last_training_frame(console: Console) -> str:
    return [frame for frame in frames(console) if "epoch" in frame][-1]


@pytest.fixture
def every_frame(monkeypatch):
    """Draw every frame the refresh rate asks for (the bar draws at most 10 a second; a tiny run takes less)."""
    monkeypatch.setattr(ProgressBar, "min_frame_seconds", 0.0)


def test_refresh_rate_moves_the_bar_every_n_batches(tmp_path, every_frame):
    shown = {}
    for rate in (1, 2):
        console = terminal()
        run(tmp_path, "trainer.enable_progress_bar=true", f"callbacks=[{{RichProgressBar: {{refresh_rate: {rate}}}}}]",
            console=console)
        shown[rate] = {count for frame in frames(console) for count in epoch_counts(frame)}
    assert {(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)} <= shown[1]
    assert (1, 1) not in shown[2] and (2, 1) not in shown[2]  # 3 batches: drawn after the 2nd and the last
    assert {(1, 2), (1, 3), (2, 2), (2, 3)} <= shown[2]
    console = terminal()  # 0: no progress shown at all
    run(tmp_path, "trainer.enable_progress_bar=true", "callbacks=[{TQDMProgressBar: {refresh_rate: 0}}]",
        console=console)
    assert not frames(console) and "epoch 1" not in console.file.getvalue()


def test_leave_keeps_each_finished_epochs_bar(tmp_path, every_frame):
    kept, replaced = terminal(), terminal()
    run(tmp_path, "trainer.enable_progress_bar=true", "callbacks=[{TQDMProgressBar: {leave: true}}]", console=kept)
    run(tmp_path, "trainer.enable_progress_bar=true", "callbacks=[{RichProgressBar: {leave: false}}]",
        console=replaced)
    # what stays on screen when training ends (the test's bar comes below it): both epochs' bars, or the last
    assert epoch_counts(last_training_frame(kept)) == [(1, 3), (2, 3)]
    assert epoch_counts(last_training_frame(replaced)) == [(2, 3)]


def test_a_theme_styles_the_bar_and_a_bad_style_is_a_located_error(tmp_path, every_frame):
    console = terminal()
    run(tmp_path, "trainer.enable_progress_bar=true", "callbacks=[{RichProgressBar: {theme: "
                  "{progress_bar_finished: blue, metrics_format: .2f}}}]", console=console)
    assert "\x1b[34m━" in console.file.getvalue()  # blue finished bars
    assert re.search(r"train/loss \d\.\d\d ", last_training_frame(console))
    with pytest.raises(SpecError, match=r"spec.yaml:.*theme progress_bar: 'no-such-colour' is not a rich style"):
        run(tmp_path, "trainer.enable_progress_bar=true",
            "callbacks=[{RichProgressBar: {theme: {progress_bar: no-such-colour}}}]")


def test_a_listed_bar_beside_enable_progress_bar_false_is_a_located_error(tmp_path):
    with pytest.raises(SpecError, match=r"spec.yaml:\d+:\d+: .*enable_progress_bar is false, but callbacks lists a "
                                        r"TQDMProgressBar — remove one of them"):
        run(tmp_path, "callbacks=[TQDMProgressBar]")
    with pytest.raises(SpecError, match="callbacks lists 2 progress bars"):
        run(tmp_path, "trainer.enable_progress_bar=true", "callbacks=[RichProgressBar, TQDMProgressBar]")
