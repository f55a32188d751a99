"""What `dtrain validate` and `dtrain run` import before they start: only what a spec uses.

Time is not measured here (benchmarks/validate_speed.py and benchmarks/startup.py do that); what is
checked is which slow modules a process imports, and that planning small layers on the CPU gives the
plan the meta device gives.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest
import torch

import declarative.model.builder as builder
from declarative.data.sources import SOURCE_MODULES, SOURCES
from declarative.errors import SpecError
from declarative.model.builder import plan_model
from declarative.spec.validate import load_spec
from specs import DIGITS, write_spec

# Model sections over data without transforms: `input: auto` reads the data's description.
SPECS = {
    "synthetic.yaml": """\
        data:
          source: {Synthetic: {shape: [3, 8, 8], num_classes: 4, size: 64}}
          val: {fraction: 0.25}
        model:
          input: auto
          init: {Conv2d: {weight: kaiming_uniform_}}
          layers:
            - Conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
            - BatchNorm2d
            - residual: {layers: [{Conv2d: {out_channels: 8, kernel_size: 3, padding: 1}}, ReLU]}
            - Flatten: {start_dim: 2}
            - LSTM: {hidden_size: 16, batch_first: true}
              output: 0
            - TransformerEncoderLayer: {d_model: 16, nhead: 2, dim_feedforward: 32, batch_first: true}
            - Flatten
            - Linear: {out_features: "${data.num_classes}"}
        loss: CrossEntropyLoss
        optimizer: {AdamW: {lr: 1.0e-3}}
        """,
    "arrays.yaml": f"""\
        data:
          source: {{ArrayFile: {{path: {DIGITS}}}}}
          val: {{fraction: 0.2}}
        model:
          input: auto
          layers:
            - Flatten
            - Linear: {{out_features: 32}}
            - GELU
            - Dropout: {{p: 0.1}}
            - Linear: {{out_features: "${{data.num_classes}}"}}
        loss: CrossEntropyLoss
        optimizer: {{SGD: {{lr: 0.1}}}}
        """,
}

SLOW_MODULES = ["torchvision", "torch._dynamo", "sympy", "torch.fx.experimental.symbolic_shapes"]


def _write(folder, name):
    return write_spec(folder, textwrap.dedent(SPECS[name]), name)


def test_validating_specs_without_torchvision_parts_imports_neither_torchvision_nor_dynamo(tmp_path):
    paths = [str(_write(tmp_path, name)) for name in SPECS]
    # the real command; -X importtime lists on stderr every module the process imported
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "declarative", "validate", "--no-cache", *paths],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    problems = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert result.returncode == 0 and problems == [], result.stderr[-2000:]
    assert "torch" in imported and "declarative.model.builder" in imported  # the models were planned
    assert [m for m in SLOW_MODULES if m in imported] == []  # each costs a cold `dtrain validate` half a second or more


def test_planning_on_the_cpu_gives_the_meta_devices_plan(tmp_path, monkeypatch):
    spec_path = _write(tmp_path, "synthetic.yaml")
    monkeypatch.setattr(builder, "CPU_TRACE_BUDGET", float("inf"))  # every layer on the CPU
    monkeypatch.setattr(builder, "CPU_TRACE_MAX_PARAMETERS", float("inf"))
    cpu = plan_model(load_spec(spec_path))
    monkeypatch.setattr(builder, "CPU_TRACE_BUDGET", 0)  # every layer on the meta device
    meta = plan_model(load_spec(spec_path))
    assert [(n.name, n.output_shape, n.parameters, n.inferred) for _, n in cpu.walk()] == \
           [(n.name, n.output_shape, n.parameters, n.inferred) for _, n in meta.walk()]
    assert cpu.output_shape == (4,) and cpu.parameters == meta.parameters > 0


def test_planning_leaves_the_random_stream_of_a_seeded_run_alone(tmp_path):
    spec = load_spec(_write(tmp_path, "arrays.yaml"))
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    plan_model(spec)  # builds the small layers on the CPU, drawing their initial weights
    assert torch.equal(torch.rand(3), expected)


def test_a_layer_that_fails_on_the_cpu_reports_the_meta_devices_error(tmp_path, monkeypatch):
    text = textwrap.dedent(SPECS["arrays.yaml"]).replace(
        "- Flatten\n", "- Flatten\n    - Linear: {out_features: 8}\n    - Unflatten: {dim: 1, unflattened_size: [3, 3]}\n")
    path = write_spec(tmp_path, text)

    def problem() -> str:
        with pytest.raises(SpecError) as raised:
            load_spec(path)
        return str(raised.value)

    message = problem()
    assert "Unflatten) cannot take its input of shape [N, 8]" in message
    monkeypatch.setattr(builder, "CPU_TRACE_BUDGET", 0)
    assert problem() == message  # the words of the all-meta plan


def test_each_source_module_adds_the_sources_the_registry_looks_up_in_it():
    for module, names in SOURCE_MODULES.items():
        importlib.import_module(module)
        for name in names:
            assert SOURCES[name].factory.__module__ == module, name
    listed = {name for names in SOURCE_MODULES.values() for name in names}
    for entry in SOURCES.entries():
        module = getattr(entry.factory, "__module__", None)
        if module in SOURCE_MODULES:
            assert entry.name in listed, f"{entry.name} is added by {module} but not listed"
