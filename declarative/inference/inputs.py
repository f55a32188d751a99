"""The inputs of `dtrain predict`: what the checkpoint's spec reads, without targets.

    cat.png dog.jpg            image files, decoded as the training images were (RGB uint8)
    new_images/                a folder of images, searched recursively (class folders or not)
    rows.csv                   a CSV of the training CSV's input columns (target columns may be there:
                               they are ignored), encoded as training encoded them
    x.npy  x.npz  x.pt         arrays of samples (N, *sample): a .npy array, the `inputs` array of a .npz
                               (or its only one), a tensor or the `inputs` tensor of a dict saved by torch.save
    split:test                 a split of the spec's data (train, val or test), carved as in training

Each input is given an id: the image's path, `file:row` for table and array rows, `test:i` for a split.
Images keep the size of the spec's leading Resize/CenterCrop (as training read them); they must
otherwise share one size to be batched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import torch

from declarative.errors import Location, Problem, SpecError

__all__ = ["Inputs", "read_inputs"]

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
_ARRAY_SUFFIXES = (".npy", ".npz", ".pt", ".pth")
_SPLITS = ("train", "val", "test")


@dataclass
class Inputs:
    ids: list[str]
    samples: torch.Tensor  # (N, *sample), as the source would give them (before the transforms)


def _error(where: str | Path, message: str) -> SpecError:
    return SpecError(Problem(Location(str(where)), message))


def _image_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise _error(path, f"the folder holds no image files ({', '.join(_IMAGE_SUFFIXES)})")
        return files
    return [path]


def _read_images(trained, files: list[Path]) -> torch.Tensor:
    from declarative.data.images import decode_image, leading_resize

    resize = leading_resize(trained.spec)
    images = []
    for file in files:
        try:
            image = decode_image(file)
        except OSError as exc:
            raise _error(file, f"not an image file that can be read ({' '.join(str(exc).split())})") from None
        images.append(resize(image) if resize is not None else image)
    for file, image in zip(files, images):
        if image.shape != images[0].shape:
            raise _error(file, f"is {'×'.join(map(str, image.shape))} but {files[0]} is "
                               f"{'×'.join(map(str, images[0].shape))} (C×H×W); the spec's transforms do not begin "
                               f"with a Resize, so the images must share one size")
    return torch.stack(images)


def _encode_csv(trained, file: Path) -> torch.Tensor:
    """New rows encoded as the training CSV's were, with the column settings the run fitted (recorded in
    the checkpoint): categories one-hot, numbers scaled, missing values filled, text tokenized."""
    from declarative.data.columns import Column
    from declarative.data.images import decode_image
    from declarative.data.sources import SourceError
    from declarative.data.tabular import _Table

    vocabulary = trained.vocabulary
    if "csv_inputs" not in vocabulary:
        raise _error(file, "the checkpoint's model was not trained on a CSV source, so it cannot read CSV rows; "
                           "give inputs of the kind its spec reads")
    delimiter = trained.spec.data.source.kwargs.get("delimiter", ",")
    try:
        table = _Table(file, delimiter)
        features = []
        for entry in vocabulary["csv_inputs"]:
            name = entry["name"]
            if name not in table.header:
                raise _error(file, f"has no column '{name}', an input of the model (its inputs: "
                                   f"{', '.join(c['name'] for c in vocabulary['csv_inputs'])})")
            column = Column(name, dict(entry["settings"]))
            values = table.values(table.header.index(name))
            column.check_missing(values, table.line, file.name)
            features.append(column.encode(values, lambda path: decode_image(file.parent / path)))
    except SourceError as exc:
        raise _error(file, exc.message) from None
    return features[0] if len(features) == 1 else torch.cat(features, dim=1)


def _read_array(file: Path) -> torch.Tensor:
    from declarative.data.sources import SourceError, _read_npy, _read_npz

    suffix = file.suffix.lower()
    try:
        if suffix == ".npy":
            return _read_npy(file, "path")
        if suffix == ".npz":
            names, _ = _read_npz(file, ())
            wanted = "inputs" if "inputs" in names else names[0] if len(names) == 1 else None
            if wanted is None:
                raise SourceError(f"{file.name} holds arrays {', '.join(names)}; name the samples `inputs`", "path")
            return _read_npz(file, (wanted,))[1][wanted]
        return _tensor_or_inputs(file)
    except SourceError as exc:
        raise _error(file, exc.message) from None


def _tensor_or_inputs(file: Path) -> torch.Tensor:
    from declarative.safe_load import UnreadableFile, load_weights_only

    try:
        loaded = load_weights_only(file)
    except UnreadableFile as exc:
        raise _error(file, f"not a file torch.load reads with weights_only ({exc.reason})") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("inputs"), torch.Tensor):
        return loaded["inputs"]
    if isinstance(loaded, torch.Tensor):
        return loaded
    raise _error(file, "holds neither a tensor nor a dict with an 'inputs' tensor")


def _read_split(trained, role: str, where: str) -> torch.Tensor:
    from declarative.data.splits import resolve_splits

    split = getattr(resolve_splits(trained.spec), role)
    if split is None:
        raise _error(where, f"the checkpoint's spec has no {role} split")
    return split.inputs


def read_inputs(trained, given: list[str]) -> Inputs:
    """All of `given` as one batch of raw samples with their ids; a located error names the input at fault."""
    ids: list[str] = []
    parts: list[torch.Tensor] = []
    for item in given:
        if item.startswith("split:"):
            role = item.removeprefix("split:")
            if role not in _SPLITS:
                raise _error(item, f"unknown split '{role}' — one of {', '.join(_SPLITS)}")
            samples = _read_split(trained, role, item)
            parts.append(samples)
            ids.extend(f"{role}:{i}" for i in range(len(samples)))
            continue
        path = Path(item)
        if not path.exists():
            raise _error(path, "no such file or folder")
        suffix = path.suffix.lower()
        if path.is_dir() or suffix in _IMAGE_SUFFIXES:
            files = _image_files(path)
            parts.append(_read_images(trained, files))
            ids.extend(str(f) for f in files)
            continue
        if suffix in (".csv", ".tsv", ".txt"):
            samples = _encode_csv(trained, path)
        elif suffix in _ARRAY_SUFFIXES:
            samples = _read_array(path)
        else:
            raise _error(path, "predict reads images, folders of images, .csv, .npy, .npz or .pt files, "
                               "or split:NAME")
        parts.append(samples)
        ids.extend(f"{path}:{i}" for i in range(len(samples)))
    expected = tuple(parts[0].shape[1:])
    for item, part in zip(given, parts):
        if tuple(part.shape[1:]) != expected:
            raise _error(item, f"gives samples of shape {list(part.shape[1:])}, but the first input's are "
                               f"{list(expected)}")
    return Inputs(ids, torch.cat(parts) if len(parts) > 1 else parts[0])
