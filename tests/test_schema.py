"""The committed schema is the contract: current, valid JSON Schema 2020-12, and complete."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torchvision
from jsonschema import Draft202012Validator

from declarative.spec.document import load_file
from declarative.spec.schema import schema_text
from declarative.spec.validate import schema_problems

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "schemas" / "spec.schema.json"


def _committed() -> dict:
    return json.loads(COMMITTED.read_text())


def test_committed_schema_is_current():
    """Fails when a registry changed and `dtrain schema -o schemas/spec.schema.json` was not rerun."""
    made_from = re.search(r"torch (\S+) and torchvision (\S+)\.", _committed()["$comment"]).groups()
    installed = (torch.__version__.split("+")[0], torchvision.__version__.split("+")[0])
    if made_from != installed:
        pytest.skip(f"schema generated from torch/torchvision {made_from}, installed {installed}")
    assert COMMITTED.read_text() == schema_text(), "regenerate: dtrain schema -o schemas/spec.schema.json"


def test_schema_is_valid_draft_2020_12():
    schema = _committed()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_knows_every_layer_and_its_arguments():
    layers = _committed()["$defs"]["layer"]["else"]["properties"]
    assert {"Conv2d", "Linear", "LSTM", "BatchNorm1d", "TransformerEncoderLayer"} <= set(layers)
    linear = layers["Linear"]
    out_features = linear["properties"]["out_features"]  # an integer >= 1, or a ${...} reference
    assert out_features["else"] == {"type": "integer", "minimum": 1}
    assert out_features["if"] == {"$ref": "#/$defs/reference"} and "then" not in out_features
    assert linear["properties"]["bias"]["else"] == {"type": "boolean"}
    assert linear["properties"]["bias"]["default"] is True
    assert linear["required"] == ["out_features"] and linear["additionalProperties"] is False


def test_unknown_keys_are_rejected_everywhere():
    """Every object in the schema closes its keys: a typo never passes silently. Objects whose keys
    the user names (block names, block parameters) constrain them by a pattern instead. An `if` is a
    condition, not a constraint: it stays open."""
    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object" or node.get("type") == ["object", "null"]:
                assert node.get("additionalProperties") is False or "propertyNames" in node, where
            for key, value in node.items():
                if key != "if":
                    walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")
    walk(_committed(), "#")


@pytest.mark.parametrize("spec", sorted((ROOT / "specs").glob("*.yaml")), ids=lambda p: p.name)
def test_example_specs_pass_the_schema_and_name_it_for_editors(spec):
    assert spec.read_text().startswith("# yaml-language-server: $schema=../schemas/spec.schema.json")
    assert schema_problems(load_file(spec)) == []
