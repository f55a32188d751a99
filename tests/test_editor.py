"""Editors, for real: yaml-language-server (what VS Code's YAML extension, Neovim and Helix run) reads a
spec's `$schema` line and completes layer names, their keyword arguments and enum values, and flags a
misspelt keyword argument on its line.

The server is the npm package, installed once into a cache folder (DTRAIN_NODE_CACHE, else
~/.cache/dtrain-tests/node). Without node and npm, or where npm cannot install it, the test is skipped
with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from yaml_ls import YamlLanguageServer

ROOT = Path(__file__).resolve().parents[1]
SERVER_VERSION = "1"  # the major version: completion and diagnostics as tested here


def _server() -> list[str]:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed: the editor check needs yaml-language-server (npm)")
    cache = Path(os.environ.get("DTRAIN_NODE_CACHE") or Path.home() / ".cache" / "dtrain-tests" / "node")
    binary = cache / "node_modules" / ".bin" / "yaml-language-server"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        installed = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(cache),
                                    f"yaml-language-server@{SERVER_VERSION}"], capture_output=True, text=True, timeout=300)
        if installed.returncode != 0 or not binary.exists():
            pytest.skip(f"npm could not install yaml-language-server: {installed.stderr.strip()[-300:]}")
    return [str(binary), "--stdio"]


SPEC = f"""\
# yaml-language-server: $schema={(ROOT / 'schemas' / 'spec.schema.json').as_posix()}
name: editor
data:
  source: {{Synthetic: {{shape: [1, 8, 8], num_classes: 3}}}}
  batch_size: 8
model:
  input: [1, 8, 8]
  layers:
    - Conv2d: {{out_channels: 4, kernel_size: 3}}
    - Re
    - Conv2d:
        ker
    - Relu
    - Maxpool2d: {{kernel_size: 2}}
    - Flatten
    - Linear: {{out_feature: 3}}
optimizer: {{Adam: {{lr: 1.0e-3}}}}
trainer:
  precision: 
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("editor")
    ls = YamlLanguageServer(_server(), folder)
    path = folder / "spec.yaml"
    path.write_text(SPEC)
    uri = ls.open(path, SPEC)
    yield ls, uri
    ls.close()


def _line(text: str) -> int:
    return SPEC.splitlines().index(text)


def test_completion_offers_layer_names_where_a_layer_goes(server):
    ls, uri = server
    labels = ls.completion_labels(uri, _line("    - Re"), len("    - Re"))
    assert {"ReLU", "ReLU6", "Conv2d", "Linear", "BatchNorm2d"} <= set(labels)


def test_completion_offers_a_layers_keyword_arguments_inside_it(server):
    ls, uri = server
    labels = ls.completion_labels(uri, _line("        ker"), len("        ker"))
    assert {"kernel_size", "out_channels", "padding", "stride", "padding_mode"} <= set(labels)
    assert "out_features" not in labels  # Linear's, not Conv2d's


def test_completion_offers_enum_values_of_a_setting(server):
    ls, uri = server
    labels = ls.completion_labels(uri, _line("  precision: "), len("  precision: "))
    assert {"32-true", "16-mixed", "bf16-mixed"} <= set(labels)


def test_a_misspelt_keyword_argument_is_flagged_on_its_line(server):
    ls, uri = server
    diagnostics = ls.wait_for_diagnostics(uri)
    line = _line("    - Linear: {out_feature: 3}")
    on_line = [d for d in diagnostics if d["range"]["start"]["line"] == line]
    assert any("out_feature" in d["message"] and "not allowed" in d["message"] for d in on_line), diagnostics
    column = SPEC.splitlines()[line].index("out_feature")
    assert any(d["range"]["start"]["character"] == column for d in on_line)


@pytest.mark.parametrize("text, name", [("    - Relu", "Relu"), ("    - Maxpool2d: {kernel_size: 2}", "Maxpool2d")])
def test_a_layer_name_in_the_wrong_case_is_flagged_on_its_line(server, text, name):
    ls, uri = server
    diagnostics = ls.wait_for_diagnostics(uri)
    on_line = [d for d in diagnostics if d["range"]["start"]["line"] == _line(text)]
    assert on_line, diagnostics  # not taken for a block of the spec: it differs from a layer only in case
    assert any(d["range"]["start"]["character"] == text.index(name) for d in on_line), on_line
