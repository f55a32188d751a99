"""A tiny spec for the trainer tests: 96 samples, 4 features, 3 classes; a run takes a fraction of a second.

Every spec goes through the real loader (file → overrides → validation), and every run through
the real `fit_spec`: real model builder, real data, real callbacks and loggers.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from rich.console import Console

from declarative.run import RunResult, fit_spec
from declarative.spec.config import Spec
from declarative.spec.validate import load_spec

# 48 train samples → 3 batches of 16; 24 val → 2 batches; 24 test → 2 batches.
BASE = """\
name: tiny
seed: 0
data:
  source: {ArrayFile: {path: data.npz}}
  val: {fraction: 0.25}
  test: {fraction: 0.25}
  batch_size: 16
model:
  input: [4]
  layers:
    - Linear: {out_features: 16}
    - ReLU
    - Linear: {out_features: 3}
loss: CrossEntropyLoss
metrics: [accuracy]
optimizer: {SGD: {lr: 0.5}}
trainer:
  max_epochs: 2
  accelerator: cpu
  enable_progress_bar: false
"""


def write_data(path: Path, n: int = 96, seed: int = 0, *, max_target: int | None = None) -> Path:
    """Separable 3-class data: the class is the argmax of a fixed linear map of the inputs."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n, 4)).astype(np.float32)
    targets = (inputs @ rng.normal(size=(4, 3))).argmax(axis=1).astype(np.int64)
    if max_target is not None:
        targets[:] = max_target
    np.savez(path, inputs=inputs, targets=targets)
    return path


def make_spec(folder: Path, *overrides: str, text: str = BASE) -> Spec:
    """Write data.npz and spec.yaml into `folder` and load them; runs go to `folder/runs`."""
    folder = Path(folder)
    if not (folder / "data.npz").exists():
        write_data(folder / "data.npz")
    path = folder / "spec.yaml"
    path.write_text(text)
    return load_spec(path, [f"trainer.default_root_dir={folder / 'runs'}", *overrides])


def quiet() -> Console:
    """A console that writes into a buffer (read it back with `.file.getvalue()`)."""
    return Console(file=io.StringIO(), width=200)


def run(folder: Path, *overrides: str, console: Console | None = None, text: str = BASE) -> RunResult:
    return fit_spec(make_spec(folder, *overrides, text=text), console=console or quiet())


def results(result: RunResult) -> dict:
    return json.loads((result.run_dir / "results.json").read_text())


def checkpoint_names(result: RunResult) -> list[str]:
    return sorted(p.name for p in (result.run_dir / "checkpoints").iterdir())
