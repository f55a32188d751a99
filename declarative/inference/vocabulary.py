"""What a checkpoint must carry to read new inputs and name its predictions without the training data.

Recorded at training time (`vocabulary(spec)`, part of every checkpoint's extras):

    class_names   the class names in index order: ImageFolder's sorted class folders, the sorted words
                  of a CSV target column of categories; absent where classes are plain indices
    csv_inputs    for a CSV source, each input column in order: its name and the settings the run fitted
                  (declarative/data/columns.py), so new rows are encoded as training encoded them
    csv_targets   the CSV's target column names (a predict input may leave them out, or keep them)
    raw_input     one sample as the source gives it, before the transforms: {"shape", "dtype"}
                  (what an exported model with its preprocessing takes)

Every entry is optional: a source it cannot describe is simply not described.
"""

from __future__ import annotations

from typing import Any

__all__ = ["vocabulary", "csv_encoding"]


def csv_encoding(source) -> dict[str, Any]:
    """A CSV source's input columns in order, with the settings the run fitted (categories, scaling, missing
    values, vocabularies), its target columns, and the class names of a single target column of words."""
    table = source.table()
    names = source._input_names(table)
    record: dict[str, Any] = {"csv_inputs": [{"name": n, "settings": dict(source.columns.get(n, {}))} for n in names],
                              "csv_targets": list(source.targets)}
    if len(source.targets) == 1 and "categories" in source.columns.get(source.targets[0], {}):
        record["class_names"] = list(source.columns[source.targets[0]]["categories"])
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
            source.columns = dict(spec.data.source.kwargs.get("columns") or source.columns)  # as fitted
            record.update(csv_encoding(source))
        raw = raw_sample(spec)
        if raw is not None:
            record["raw_input"] = {"shape": list(raw.shape), "dtype": str(raw.dtype).removeprefix("torch.")}
    except (SourceError, SpecError, OSError):
        pass
    return record
