"""`dtrain init DATA`: a commented starter spec for an image folder, a CSV table or an array file.

The spec validates and trains as written; its comments say what to change first. Its data path is
relative to the spec file, as every path in a spec is.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Callable

from declarative.errors import UsageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
ARRAY_SUFFIXES = {".npz", ".pt", ".npy"}

_HEAD = """\
# yaml-language-server: $schema={schema}
#
# A starter spec written by `dtrain init` for {what}.
# Check it with `dtrain validate {spec}`, train it with `dtrain run {spec}`.
name: {name}
seed: 0

"""

_TRAINING = """\
optimizer:
  AdamW: {{lr: {lr}, weight_decay: 0.01}}   # any torch.optim optimizer by name

trainer: {{max_epochs: {epochs}}}            # Lightning's Trainer arguments
callbacks:
  - ModelCheckpoint: {{monitor: {monitor}, mode: {mode}}}   # keeps the best epoch's weights
  - EarlyStopping: {{monitor: val/loss, patience: 5}}
"""


def _schema_reference(spec_dir: Path) -> str:
    """The committed schema, relative to the spec where it can be, for editors' completion and checks."""
    from importlib import resources

    from declarative.spec.validate import REPO_SCHEMA

    packaged = Path(str(resources.files("declarative") / "spec.schema.json"))
    schema = packaged if packaged.is_file() else REPO_SCHEMA
    try:
        return Path(os.path.relpath(schema, spec_dir)).as_posix()
    except ValueError:  # another drive
        return schema.as_uri()


def _name(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem if path.is_file() else path.name).strip("-") or "run"


def _image_folder(root: Path, reference: str) -> tuple[str, str]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()
                     and any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir()))
    if len(classes) < 2:
        raise UsageError(f"{root} is not an image folder: it needs a folder of images per class, "
                         f"root/<class>/<image> (found {len(classes)} class folder(s) with images)")
    shown = ", ".join(classes[:6]) + (", ..." if len(classes) > 6 else "")
    return f"the image folder {root} ({len(classes)} classes: {shown})", f"""\
data:
  source:
    ImageFolder: {{root: {reference}}}   # <root>/<class>/<image>; classes numbered in sorted order
  val: {{fraction: 0.2, stratify: true}}   # carved from the training images; each class keeps its share
  transforms:                            # torchvision.transforms.v2 by name, on each batch
    - Resize: {{size: [64, 64], antialias: true}}   # one size for all images; larger sees more detail
    - ToDtype: {{dtype: float32, scale: true}}      # uint8 0..255 -> float 0..1
    - Normalize: {{mean: auto, std: auto}}          # per channel, from the training images
  batch_size: 32

model:
  input: auto                            # [3, 64, 64], from the data
  layers:                                # a small CNN; torch.nn layers by name
    - Conv2d: {{out_channels: 32, kernel_size: 3, padding: 1}}   # in_channels inferred
    - BatchNorm2d
    - ReLU
    - MaxPool2d: {{kernel_size: 2}}
    - Conv2d: {{out_channels: 64, kernel_size: 3, padding: 1}}
    - BatchNorm2d
    - ReLU
    - AdaptiveAvgPool2d: {{output_size: 1}}
    - Flatten
    - Linear: {{out_features: "${{data.num_classes}}"}}   # one score per class

"""


def _csv_columns(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path} cannot be read as a CSV table: {exc}") from None
    if len(rows) < 2 or len(rows[0]) < 2:
        raise UsageError(f"{path} needs a header row naming at least two columns and rows of data")
    return rows[0], rows[1:]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _csv(path: Path, reference: str, target: str | None, ask: Callable[[list[str]], str] | None) -> tuple[str, str, str, str]:
    from declarative.errors import did_you_mean

    columns, rows = _csv_columns(path)
    if target is None:
        if ask is None:
            raise UsageError(f"which column of {path.name} is the target? give it with --target "
                             f"(columns: {', '.join(columns)})")
        target = ask(columns)
    if target not in columns:
        hint = did_you_mean(target, columns)
        raise UsageError(f"{path.name} has no column '{target}'" + (f" — {hint}" if hint else "")
                         + f" (columns: {', '.join(columns)})")
    values = [row[columns.index(target)] for row in rows if len(row) == len(columns)]
    numbers = [_number(v) for v in values]
    if all(n is not None for n in numbers) and any(n != int(n) for n in numbers):
        kind, outputs, monitor, mode = "regression: decimals", "1", "val/loss", "min"
    else:
        kind, outputs, monitor, mode = ("classes: whole numbers or words", '"${data.num_classes}"', "val/accuracy", "max")
    return f"the table {path} (target: {target})", f"""\
data:
  source:
    CSV: {{path: {reference}, targets: {target}}}   # inputs: every other column; word columns one-hot
  val: {{fraction: 0.2}}                 # carved from the rows, seeded
  batch_size: 64

model:
  input: auto                            # [number of input features], from the table
  layers:                                # an MLP; the task is read from the target ({kind})
    - BatchNorm1d: {{momentum: null}}      # every input column on one scale; eval uses the mean over all batches
    - Linear: {{out_features: 64}}         # in_features inferred
    - ReLU
    - Linear: {{out_features: 64}}
    - ReLU
    - Linear: {{out_features: {outputs}}}

""", monitor, mode


def _arrays(path: Path, reference: str) -> tuple[str, str, str, str]:
    import numpy as np

    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                dtype = arrays["targets"].dtype if "targets" in arrays else None
                inputs = arrays["inputs"].dtype if "inputs" in arrays else np.dtype("float32")
        elif path.suffix == ".pt":
            import torch

            stored = torch.load(path, map_location="cpu", weights_only=True)
            stored = stored if isinstance(stored, dict) else {}
            dtype = stored["targets"].numpy().dtype if "targets" in stored else None
            inputs = stored["inputs"].numpy().dtype if "inputs" in stored else np.dtype("float32")
        else:
            labels = path.with_name("targets.npy")
            dtype = np.load(labels, allow_pickle=False, mmap_mode="r").dtype if labels.is_file() else None
            inputs = np.load(path, allow_pickle=False, mmap_mode="r").dtype
    except Exception as exc:  # noqa: BLE001  any unreadable file is the same usage error
        raise UsageError(f"{path} cannot be read as an array file: {exc}") from None
    if dtype is None:
        raise UsageError(f"{path} has no targets array: save `inputs` and `targets` (numpy.savez(path, inputs=..., "
                         "targets=...)), or for .npy a targets.npy beside it")
    classes = np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.bool_)
    transforms = "" if np.issubdtype(inputs, np.floating) else (
        f"  transforms:\n    - ToDtype: {{dtype: float32}}          # the stored {inputs} values as float32 for the layers\n")
    outputs, monitor, mode = ('"${data.num_classes}"', "val/accuracy", "max") if classes else ("1", "val/loss", "min")
    return f"the arrays {path}", f"""\
data:
  source:
    ArrayFile: {{path: {reference}}}        # arrays `inputs` and `targets`
  val: {{fraction: 0.2}}                 # carved from the samples, seeded
{transforms}  batch_size: 64

model:
  input: auto                            # one sample's shape, from the data
  layers:                                # an MLP over the flattened sample
    - Flatten
    - Linear: {{out_features: 128}}        # in_features inferred
    - ReLU
    - Linear: {{out_features: {outputs}}}   # {"one score per class" if classes else "one value to regress on"}

""", monitor, mode


def starter_spec(data: Path, spec_path: Path, *, target: str | None = None,
                 ask: Callable[[list[str]], str] | None = None) -> str:
    """The text of a starter spec at `spec_path` for `data` (a folder of class folders, a .csv, or .npz/.pt/.npy)."""
    if not data.exists():
        raise UsageError(f"{data} does not exist")
    spec_dir = spec_path.resolve().parent
    reference = Path(os.path.relpath(data.resolve(), spec_dir)).as_posix()
    if data.is_dir():
        what, body = _image_folder(data, reference)
        monitor, mode, lr, epochs = "val/accuracy", "max", "1.0e-3", 10
    elif data.suffix.lower() == ".csv":
        what, body, monitor, mode = _csv(data, reference, target, ask)
        lr, epochs = "3.0e-3", 30
    elif data.suffix.lower() in ARRAY_SUFFIXES:
        what, body, monitor, mode = _arrays(data, reference)
        lr, epochs = "1.0e-3", 20
    else:
        raise UsageError(f"{data}: dtrain init knows image folders (root/<class>/<image>), .csv tables and "
                         ".npz/.pt/.npy arrays")
    shown = os.path.relpath(spec_path) if not spec_path.is_absolute() else str(spec_path)
    head = _HEAD.format(schema=_schema_reference(spec_dir), what=what, spec=shown, name=_name(data))
    return head + body + _TRAINING.format(lr=lr, epochs=epochs, monitor=monitor, mode=mode)
