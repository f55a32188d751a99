"""What a checkpoint must carry to read new inputs and name its predictions without the training data.

Recorded at training time (`vocabulary(spec)`, part of every checkpoint's extras):

    class_names   the class names in index order: ImageFolder's sorted class folders, the sorted words
                  of a CSV target column of categories; absent where classes are plain indices
    csv_inputs    for a CSV source, each input column in order: its name, and for a categorical column
                  its categories in one-hot order (so new rows are encoded as training encoded them)
    csv_targets   the CSV's target column names (a predict input may leave them out, or keep them)
    raw_input     one sample as the source gives it, before the transforms: {"shape", "dtype"}
                  (what an exported model with its preprocessing takes)

Every entry is optional: a source it cannot describe is simply not described.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["vocabulary", "csv_encoding"]


def csv_encoding(source) -> dict[str, Any]:
    """A CSV source's input columns (with the categories of categorical ones), target columns, and the
    class names of a single target column of categories, read from its file as the source reads it."""
    from declarative.data.tabular import _Table, _category_order

    table = _Table(Path(source.path), source.delimiter)
    targets = [table.index(c, "targets") for c in source.targets]
    inputs = ([i for i in range(len(table.header)) if i not in targets] if source.inputs is None
              else [table.index(c, "inputs") for c in source.inputs])
    columns = []
    for column in inputs:
        entry: dict[str, Any] = {"name": table.header[column]}
        if source._kind(table, column) == "categorical":
            entry["categories"] = _category_order(table.values(column))
        columns.append(entry)
    record: dict[str, Any] = {"csv_inputs": columns, "csv_targets": list(source.targets)}
    if len(targets) == 1 and source._kind(table, targets[0]) == "categorical":
        record["class_names"] = _category_order(table.values(targets[0]))
    return record


def vocabulary(spec) -> dict[str, Any]:
    """The record described in the module's docstring, for the spec's training source; {} when the
    source cannot be read here (a run that reached this point has read it, so that is rare)."""
    from declarative.data.images import ImageFolder
    from declarative.data.info import raw_sample
    from declarative.data.sources import SourceError
    from declarative.data.splits import open_source
    from declarative.data.tabular import CSV
    from declarative.errors import SpecError

    record: dict[str, Any] = {}
    try:
        source = open_source(spec, spec.data.source)
        if isinstance(source, ImageFolder):
            record["class_names"] = list(source.folder().classes)
        elif isinstance(source, CSV):
            record.update(csv_encoding(source))
        raw = raw_sample(spec)
        if raw is not None:
            record["raw_input"] = {"shape": list(raw.shape), "dtype": str(raw.dtype).removeprefix("torch.")}
    except (SourceError, SpecError, OSError):
        pass
    return record
