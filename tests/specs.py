"""Small valid specs for tests, written to files so every test goes through the real loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DIGITS = Path(__file__).resolve().parents[1] / "specs" / "data" / "digits.npz"

MLP_SPEC = """\
name: tiny
seed: 3
data:
  source: {{ArrayFile: {{path: {data}}}}}
  test: {{fraction: 0.2}}
  val: {{fraction: 0.2}}
  transforms: [{{ToDtype: {{dtype: float32}}}}]
  batch_size: 32
model:
  input: [1, 8, 8]
  layers:
    - Flatten
    - Linear: {{out_features: 32}}
    - ReLU
    - Linear: {{out_features: 10}}
loss: CrossEntropyLoss
metrics: [accuracy]
optimizer: {{Adam: {{lr: 1.0e-2}}}}
trainer: {{max_epochs: 2, enable_progress_bar: false}}
"""


def mlp_text(data: Path | str = DIGITS) -> str:
    """The small MLP spec on a data file (the bundled digits by default)."""
    return MLP_SPEC.format(data=data)


def write_spec(folder: Path, text: str | None = None, name: str = "spec.yaml") -> Path:
    path = Path(folder) / name
    path.write_text(mlp_text() if text is None else text)
    return path


def write_arrays(path: Path, n: int = 200, shape=(1, 8, 8), classes: int = 10, seed: int = 0) -> Path:
    """An .npz of uint8 inputs and int64 targets, like the bundled digits file."""
    rng = np.random.default_rng(seed)
    np.savez(path, inputs=rng.integers(0, 17, size=(n, *shape), dtype=np.uint8),
             targets=rng.integers(0, classes, size=n, dtype=np.int64))
    return path
