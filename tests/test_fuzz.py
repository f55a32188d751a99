"""Property-based fuzzing (hypothesis) of the YAML loader, command-line overrides and `dtrain validate`:
whatever the document, the command ends in exit 0 or 1 (2 for a command line it cannot understand) with
no traceback, within a time bound. The budget is a few hundred examples, well under a minute in all."""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis", reason="fuzzing needs hypothesis (pip install -e '.[test]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from declarative.cli import app  # noqa: E402
from test_hostile import SPEC  # noqa: E402

SECONDS_PER_EXAMPLE = 30  # examples take well under a second (the first imports torch: seconds, on a busy machine)

# CI runs the budget below; DTRAIN_FUZZ_SCALE=20 searches twenty times as long, e.g. before a release.
SCALE = int(os.environ.get("DTRAIN_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples * SCALE, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))

# Scalars YAML reads in surprising ways, and ones dtrain must refuse.
SCALARS = ["1", "-1", "0", "-0.0", "1.0", "32.0", "1e3", "1e309", "-1e309", ".nan", ".NaN", ".inf", "-.Inf", "0x1F",
           "0o17", "1_000", "'x'", '"\\x00"', "null", "~", "true", "no", "on", "2020-01-01", "12:30:00", "''",
           "!!binary aGk=", "!!python/none ''", "!!str 1", "!custom x", "*a", "*b", "ReLU", "Linear",
           "${data.num_classes}", "${nope}", "../..", "/etc/passwd", "a" * 300]
KEYS = ["name", "seed", "data", "source", "model", "input", "layers", "optimizer", "SGD", "lr", "trainer",
        "max_epochs", "batch_size", "callbacks", "scheduler", "repeat", "times", "<<", "1", "? x", "k"]


def flow_values(max_leaves: int = 25) -> st.SearchStrategy[str]:
    """YAML flow text: lists, mappings, anchors and aliases of the scalars above, nested."""
    return st.recursive(
        st.sampled_from(SCALARS),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
            st.lists(st.tuples(st.sampled_from(KEYS), inner), max_size=4).map(
                lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"),
            st.tuples(st.sampled_from(["a", "b"]), inner).map(lambda t: f"&{t[0]} {t[1]}"),
        ),
        max_leaves=max_leaves,
    )


def documents() -> st.SearchStrategy[str]:
    """Whole documents: sections with flow values, sometimes with raw text of YAML's special characters."""
    sections = st.lists(st.tuples(st.sampled_from(KEYS), flow_values()), max_size=8).map(
        lambda kv: "".join(f"{k}: {v}\n" for k, v in kv))
    noise = st.text(alphabet=st.sampled_from(list(":-[]{}&*!|>'\"#%@`,? \n\t\\") + ["a", "1", ".", "\x00", "\x85",
                                                                                   "\ufeff", "é"]), max_size=200)
    return st.one_of(sections, noise, st.tuples(sections, noise).map("".join))


def _invoke(tmp_path: Path, argv: list[str]):
    started = time.monotonic()
    result = CliRunner().invoke(app, argv)
    assert time.monotonic() - started < SECONDS_PER_EXAMPLE
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    return result


@fuzz(300)
@given(text=documents())
def test_any_yaml_document_is_a_spec_or_located_problems(text, tmp_path_factory):
    folder = tmp_path_factory.mktemp("doc")
    (folder / "spec.yaml").write_text(text, encoding="utf-8")
    result = _invoke(folder, ["validate", "--schema-only", str(folder / "spec.yaml")])
    assert result.exit_code in (0, 1)
    assert all(line.startswith(str(folder / "spec.yaml")) for line in result.stderr.splitlines())


def _paths(tree, prefix=()):
    """Every path into a tree of dicts and lists, the root's children first."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else []
    for key, value in items:
        yield prefix + (key,)
        yield from _paths(value, prefix + (key,))


BASE = yaml.safe_load(SPEC)
PATHS = list(_paths(BASE))
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["ReLU", "Linear", "auto", "${data.num_classes}", "step", "max"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS + ["out_features", "p"]),
                                                                 inner, max_size=3),
    max_leaves=8,
)


def _set(tree, path, value):
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@fuzz(120)
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=3))
def test_any_spec_one_value_off_validates_or_is_located(changes, tmp_path_factory):
    spec = copy.deepcopy(BASE)
    for path, value in changes:
        try:
            _set(spec, path, value)
        except (KeyError, IndexError, TypeError):  # an earlier change replaced the parent: skip this one
            pass
    folder = tmp_path_factory.mktemp("spec")
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    result = _invoke(folder, ["validate", str(folder / "spec.yaml")])
    assert result.exit_code in (0, 1)
    assert all(line.startswith(str(folder / "spec.yaml")) for line in result.stderr.splitlines())


DOTTED = [".".join(map(str, p)) for p in PATHS]


@fuzz(120)
@given(key=st.one_of(st.sampled_from(DOTTED), st.text(alphabet="abz.019-_ ", max_size=20)),
       value=st.one_of(flow_values(10), st.text(max_size=30)))
def test_any_override_is_applied_or_refused_without_a_traceback(key, value, tmp_path_factory):
    folder = tmp_path_factory.mktemp("override")
    (folder / "spec.yaml").write_text(SPEC, encoding="utf-8")
    result = _invoke(folder, ["run", str(folder / "spec.yaml"), "--print-spec", f"{key}={value}"])
    assert result.exit_code in (0, 1, 2)
    assert not (folder / "runs").exists()
