"""Per-split transforms and batch sizes, as in the ResNet transfer-learning tutorial: RandomResizedCrop
for training, Resize + CenterCrop for evaluation, and bigger evaluation batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from declarative.data import build_data
from declarative.data.images import decode_image
from declarative.errors import SpecError
from declarative.spec.validate import load_spec, semantic_problems


def write_images(root: Path, sizes: dict[str, list[tuple[int, int]]]) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, items in sizes.items():
        (root / label).mkdir(parents=True)
        for i, (h, w) in enumerate(items):
            Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(root / label / f"{i}.png")


SPEC = """\
seed: 0
data:
  source: {{ImageFolder: {{root: pets}}}}
  val: {{fraction: 0.25}}
  train_transforms:
    - Resize: {{size: [20, 20]}}
    - RandomResizedCrop: {{size: 16, scale: [0.5, 1.0]}}
  eval_transforms:
    - Resize: {{size: [20, 20]}}
    - CenterCrop: {{size: {crop}}}
  transforms:
    - ToDtype: {{dtype: float32, scale: true}}
  batch_size: 2
  eval_batch_size: 8
model:
  layers: [Flatten, {{Linear: {{out_features: 2}}}}]
optimizer: SGD
logger: false
"""


def test_eval_transforms_differ_from_train_and_evaluation_has_its_own_batch_size(tmp_path):
    write_images(tmp_path / "pets", {"cat": [(24, 30), (40, 28), (24, 24), (33, 35)],
                                     "dog": [(30, 24), (26, 26), (50, 20), (24, 36)]})
    (tmp_path / "t.yaml").write_text(SPEC.format(crop=16))
    data = build_data(load_spec(tmp_path / "t.yaml"))
    # the shared leading Resize runs as images are read, so mixed sizes are held in memory
    assert data.train.inputs.shape == (6, 3, 20, 20)
    resize_then_crop = v2.Compose([v2.Resize([20, 20]), v2.CenterCrop(16)])
    crops = [resize_then_crop(decode_image(path)).float() / 255 for path in sorted((tmp_path / "pets").rglob("*.png"))]
    (x, _), = list(data.val)  # one batch: eval_batch_size 8
    assert x.shape == (2, 3, 16, 16) and all(any(torch.allclose(v, c) for c in crops) for v in x)
    assert [len(y) for _, y in data.train] == [2, 2, 2]
    train_batch = next(iter(data.train))[0]
    assert train_batch.shape == (2, 3, 16, 16)
    assert not any(torch.allclose(t, c) for t in train_batch for c in crops)  # random crops, resized


def test_eval_transforms_of_another_output_shape_are_caught_by_validate_and_run(tmp_path):
    write_images(tmp_path / "pets", {"cat": [(24, 24)] * 2, "dog": [(24, 24)] * 2})
    (tmp_path / "t.yaml").write_text(SPEC.format(crop=18))
    with pytest.raises(SpecError, match="training samples come out of train_transforms with shape \\[3, 16, 16\\], "
                                        "but val samples out of eval_transforms with \\[3, 18, 18\\]"):
        build_data(load_spec(tmp_path / "t.yaml"))
    problem, = semantic_problems(load_spec(tmp_path / "t.yaml", semantic=False), read_data=True)  # dtrain validate
    assert str(problem).startswith(f"{tmp_path / 't.yaml'}:9:") and "eval_transforms" in str(problem)


def test_a_read_time_resize_is_not_taken_from_transforms_when_augmentation_comes_first(tmp_path):
    write_images(tmp_path / "pets", {"cat": [(24, 24)] * 2, "dog": [(24, 24)] * 2})
    (tmp_path / "t.yaml").write_text(SPEC.format(crop=16).replace(
        "    - Resize: {size: [20, 20]}\n    - RandomResizedCrop", "    - RandomResizedCrop").replace(
        "  transforms:\n", "  transforms:\n    - Resize: {size: [16, 16]}\n"))
    data = build_data(load_spec(tmp_path / "t.yaml"))
    assert data.train.inputs.shape == (3, 3, 24, 24)  # as read: RandomResizedCrop sees the whole image
