"""`dtrain predict`: a checkpoint's model applied to new inputs, its predictions written in the user's terms.

The inputs go through the checkpoint's evaluation transforms in batches, on the chosen accelerator;
the task turns the outputs into predictions and probabilities (declarative/training/tasks.py, as
the metrics decide). Per input, one record:

    multiclass    prediction: the class name (ImageFolder folders, CSV words) or index; probability; top_k
    binary        prediction: 0/1; probability of 1
    multilabel    prediction: 0/1 per label; probabilities per label
    regression    prediction: the value(s)
    segmentation  a mask of class indices per image: a PNG per image beside the output, or an array

Written by the output's suffix: .csv, .jsonl (a JSON object per line), .npy (the predictions), .pt
(a dict of ids, predictions, scores and class names); without --output, a table on stdout.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from declarative.errors import Location, Problem, SpecError
from declarative.training.tasks import task_predictions, task_scores

__all__ = ["Predictions", "predict", "write_predictions", "OUTPUT_SUFFIXES"]

OUTPUT_SUFFIXES = (".csv", ".jsonl", ".npy", ".pt")
# Rows the stdout table shows; the rest are counted.
_SHOWN = 20


@dataclass
class Predictions:
    ids: list[str]
    outputs: torch.Tensor  # the model's raw outputs (N, ...), on the CPU
    scores: torch.Tensor  # probabilities (classification), the outputs (regression)
    predictions: torch.Tensor  # class indices, 0/1 labels, masks or values
    task: str
    class_names: list[str] | None


def predict(trained, inputs, *, device: torch.device, batch_size: int, console: Console | None = None) -> Predictions:
    """Run `trained`'s evaluation transforms and model on `inputs` (declarative/inference/inputs.py)."""
    from declarative.training.tasks import TASKS

    task = trained.task if trained.task in TASKS else "regression"  # no class structure known: the outputs
    model = trained.model.to(device)
    outputs = []
    kept = _batches(trained, len(inputs.samples), batch_size) * batch_size  # trainer.limit_predict_batches
    samples, ids = inputs.samples[:kept], list(inputs.ids[:kept])
    _check_fits(trained, samples[:1].to(device), ids[0])
    with Progress(console=console or Console(stderr=True), transient=True) as progress, torch.inference_mode():
        bar = progress.add_task("predicting", total=len(samples))
        for start in range(0, len(samples), batch_size):
            x = trained.preprocess(samples[start:start + batch_size].to(device))
            outputs.append(model(x).float().cpu())
            progress.advance(bar, len(x))
    out = torch.cat(outputs)
    return Predictions(ids, out, task_scores(task, out), task_predictions(task, out), task,
                       trained.class_names)


def _batches(trained, num_samples: int, batch_size: int) -> int:
    """The batches to predict: `trainer.limit_predict_batches` (a count or a fraction) of them, as Lightning."""
    from declarative.training.errors import MisconfigurationError

    try:
        count = trained.spec.trainer.settings().limit("predict", -(-num_samples // batch_size))
    except MisconfigurationError as exc:
        raise trained.spec.error(exc.where, exc.message) from None
    if count == 0:
        raise trained.spec.error(("trainer", "limit_predict_batches"), "limit_predict_batches=0 predicts nothing — "
                                 "give a count of batches (>= 1) or a fraction up to 1.0")
    return count


def _check_fits(trained, sample: torch.Tensor, first_id: str) -> None:
    """The inputs, through the evaluation transforms, must be what the model takes: a located error otherwise
    (before any batch runs), never a traceback from inside a layer."""
    shape, dtype = list(sample.shape[1:]), str(sample.dtype).removeprefix("torch.")
    try:
        x = trained.preprocess(sample)
    except Exception as exc:  # a transform that fails on these inputs: the inputs are at fault
        raise SpecError(Problem(Location(first_id), f"the checkpoint's evaluation transforms fail on inputs of "
                                                    f"shape {shape} ({dtype}): {' '.join(str(exc).split())}")) from None
    expected = list(trained.spec.model.input)
    if list(x.shape[1:]) != expected:
        raise SpecError(Problem(Location(first_id), f"the inputs give samples of shape {list(x.shape[1:])} after "
                                                    f"the checkpoint's evaluation transforms, but its model takes "
                                                    f"{expected}; give inputs of the kind it was trained on"))


def _name(index: int, names: list[str] | None) -> Any:
    return names[index] if names is not None and 0 <= index < len(names) else index


def _value(tensor: torch.Tensor) -> Any:
    return tensor.item() if tensor.numel() == 1 else tensor.tolist()


def records(result: Predictions, top_k: int = 1) -> list[dict[str, Any]]:
    """One dict per input, as the CSV, JSON lines and stdout outputs write it (not for segmentation)."""
    rows = []
    names = result.class_names
    for i, sample_id in enumerate(result.ids):
        row: dict[str, Any] = {"id": sample_id}
        scores, predicted = result.scores[i], result.predictions[i]
        if result.task == "multiclass":
            k = min(top_k, scores.numel())
            values, indices = scores.topk(k)
            row["prediction"] = _name(int(predicted), names)
            row["probability"] = round(float(scores[int(predicted)]), 6)
            for rank in range(1, k):
                row[f"top{rank + 1}"] = _name(int(indices[rank]), names)
                row[f"top{rank + 1}_probability"] = round(float(values[rank]), 6)
        elif result.task == "binary":
            row["prediction"] = int(predicted.reshape(-1)[0])
            row["probability"] = round(float(scores.reshape(-1)[0]), 6)
        elif result.task == "multilabel":
            row["prediction"] = predicted.tolist()
            row["probability"] = [round(float(p), 6) for p in scores]
        else:
            row["prediction"] = _value(predicted)
        rows.append(row)
    return rows


def _mask_files(result: Predictions, folder: Path) -> list[str]:
    """Each predicted mask as an 8-bit PNG of class indices (16-bit past 255 classes), named after its input."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, sample_id in enumerate(result.ids):
        mask = result.predictions[i].numpy()
        dtype = np.uint8 if mask.max(initial=0) < 256 else np.uint16
        file = folder / f"{i:05d}_{Path(sample_id.split(':')[0]).stem}.png"
        Image.fromarray(mask.astype(dtype)).save(file)
        written.append(str(file))
    return written


def write_predictions(result: Predictions, output: Path | None, *, top_k: int = 1,
                      console: Console | None = None) -> None:
    """Write the predictions to `output` by its suffix (see the module's docstring), or a table to stdout."""
    console = console or Console()
    if output is not None and output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise SpecError(Problem(Location(str(output)), f"--output ends in {output.suffix or 'no suffix'}; it "
                                                       f"writes {', '.join(OUTPUT_SUFFIXES)}"))
    suffix = output.suffix.lower() if output is not None else ""
    if suffix == ".npy":
        np.save(output, result.predictions.numpy())
        return
    if suffix == ".pt":
        torch.save({"ids": list(result.ids), "predictions": result.predictions, "scores": result.scores,
                    "class_names": list(result.class_names or [])}, output)
        return
    if result.task == "segmentation":
        folder = (output.with_name(output.stem + "_masks") if output is not None else Path("predicted_masks"))
        rows = [{"id": i, "mask": f} for i, f in zip(result.ids, _mask_files(result, folder))]
    else:
        rows = records(result, top_k)
    if suffix == ".csv":
        output.parent.mkdir(parents=True, exist_ok=True)
        with open(output, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()} for row in rows)
    elif suffix == ".jsonl":
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    else:
        table = Table(show_header=True, box=None, pad_edge=False)
        for column in rows[0]:
            table.add_column(column, overflow="fold")
        for row in rows[:_SHOWN]:
            table.add_row(*(str(v) for v in row.values()))
        console.print(table)
        if len(rows) > _SHOWN:
            console.print(f"... and {len(rows) - _SHOWN} more; --output FILE (.csv, .jsonl, .npy, .pt) writes all")
