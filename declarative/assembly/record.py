"""The run's record: the resolved spec as a run folder's spec.yaml and as what every checkpoint embeds."""

from __future__ import annotations

from typing import Any

import yaml

from declarative.spec.config import Spec

__all__ = ["used_data_values", "spec_text", "checkpoint_extras"]


def used_data_values(spec: Spec, recorded: dict | None = None) -> dict[str, Any]:
    """The values the spec's `${data.*}` references took in this run, e.g. {'data.num_classes': 10}.

    The recorded spec keeps the references (it runs again on other data); these values sit beside
    it, in the checkpoint and as a comment heading spec.yaml, so the record shows the numbers too.
    """
    info = spec.model.data
    if info is None:
        return {}
    text = str(recorded if recorded is not None else spec.to_dict())
    values = {"data.num_classes": info.num_classes, "data.input_shape": list(info.input_shape),
              "data.vocab_size": info.vocab_size}
    return {name: value for name, value in values.items() if f"${{{name}}}" in text}


def spec_text(spec: Spec) -> str:
    """The resolved spec as YAML, headed by the values its `${data.*}` references took (the references stay)."""
    record = spec.to_dict()
    values = used_data_values(spec, record)
    return "".join(f"# ${{{name}}} = {value}\n" for name, value in values.items()) + yaml.safe_dump(record, sort_keys=False)


def checkpoint_extras(spec: Spec) -> dict[str, Any]:
    """What a checkpoint carries besides the training state: the resolved spec (and its data values), and
    what predicting without the training data needs (declarative/inference/vocabulary.py)."""
    from declarative.inference.vocabulary import vocabulary

    record = spec.to_dict()
    values = used_data_values(spec, record)
    return {"spec": record, **({"data_values": values} if values else {}), "vocabulary": vocabulary(spec)}
