"""Loading YAML with positions, and command-line overrides."""

import pytest

from declarative.errors import SpecError, UsageError
from declarative.spec.document import load_file, load_text
from declarative.spec.overrides import apply_overrides


def test_positions_point_at_keys_and_values():
    doc = load_text("trainer:\n  max_epochs: 3\nmodel:\n  layers:\n    - ReLU\n    - {Linear: {out_features: 2}}\n", "s.yaml")
    assert str(doc.locate(("trainer", "max_epochs"))) == "s.yaml:2:15"
    assert str(doc.locate(("trainer", "max_epochs"), key=True)) == "s.yaml:2:3"
    assert str(doc.locate(("model", "layers", 1, "Linear", "out_features"))) == "s.yaml:6:31"
    # a path that does not exist is located at its nearest parent
    assert str(doc.locate(("model", "layers", 1, "Linear", "in_features"))) == "s.yaml:6:16"


def test_exponent_floats_are_numbers_as_in_yaml_1_2():
    assert load_text("lr: 1e-3\nb: 2E+2\nc: '1e-3'\n", "s.yaml").data == {"lr": 0.001, "b": 200.0, "c": "1e-3"}


def test_syntax_error_is_located():
    with pytest.raises(SpecError) as info:
        load_text("model:\n  layers: [ReLU, \n", "s.yaml")
    assert str(info.value).startswith("s.yaml:3:1: YAML syntax error")


def test_duplicate_key_is_an_error():
    with pytest.raises(SpecError, match=r"s.yaml:3:1: duplicate key 'seed'"):
        load_text("seed: 1\nname: x\nseed: 2\n", "s.yaml")


def test_python_tags_are_refused():
    with pytest.raises(SpecError, match="s.yaml:1:7"):
        load_text("seed: !!python/object/apply:os.system ['echo hi']\n", "s.yaml")


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_file(tmp_path / "absent.yaml")


def test_overrides_set_nested_values_and_become_their_location():
    doc = load_text("trainer:\n  max_epochs: 3\nmodel:\n  layers: [ReLU, {Linear: {out_features: 2}}]\n", "s.yaml")
    apply_overrides(doc, ["trainer.max_epochs=5", "data.batch_size=128", "model.layers.1.Linear.out_features=7",
                          "optimizer={Adam: {lr: 1e-3}}"])
    assert doc.data["trainer"]["max_epochs"] == 5
    assert doc.data["data"] == {"batch_size": 128}
    assert doc.data["model"]["layers"][1] == {"Linear": {"out_features": 7}}
    assert doc.data["optimizer"] == {"Adam": {"lr": 0.001}}
    assert str(doc.locate(("trainer", "max_epochs"))) == "s.yaml: override 'trainer.max_epochs=5'"
    assert str(doc.locate(("optimizer", "Adam", "lr"))) == "s.yaml: override 'optimizer={Adam: {lr: 1e-3}}'"


@pytest.mark.parametrize("text", ["trainer.max_epochs", "=3", "model.layers.9.Linear=1", "trainer..x=1"])
def test_malformed_overrides_are_usage_errors(text):
    doc = load_text("trainer: {max_epochs: 3}\nmodel: {layers: [ReLU]}\n", "s.yaml")
    with pytest.raises(UsageError, match="override"):
        apply_overrides(doc, [text])


def test_a_numeric_key_into_a_mapping_is_a_string_key():
    doc = load_text("data: {batch_size: 4}\n", "s.yaml")
    apply_overrides(doc, ["data.0=1"])
    assert doc.data["data"] == {"batch_size": 4, "0": 1}
    assert str(doc.locate(("data", "0"))) == "s.yaml: override 'data.0=1'"


def test_an_index_into_a_list_the_spec_lacks_asks_for_the_whole_list():
    doc = load_text("optimizer: {AdamW: {lr: 0.1}}\n", "s.yaml")
    with pytest.raises(UsageError, match=r"'optimizer.AdamW.betas' is not a list in the spec — give it whole"):
        apply_overrides(doc, ["optimizer.AdamW.betas.0=0.5"])
