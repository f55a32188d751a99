"""Hostile input: every bad spec, override, data file, checkpoint or command line a user can hand dtrain
ends in its exit code and a located message, never a traceback, a hang or a file written outside the run
folder. One table of cases, each run through the real `dtrain` app (in this process, as the console script
calls it); the `validate` cases are run again, all in one real subprocess.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from declarative.cli import app

SPEC = """\
name: hostile
seed: 0
data:
  source: {Synthetic: {shape: [8], size: 64, test_size: 16, num_classes: 3}}
  batch_size: 16
model:
  input: [8]
  layers:
    - Linear: {out_features: 16}
    - ReLU
    - Linear: {out_features: 3}
optimizer: {SGD: {lr: 0.1}}
trainer: {max_epochs: 1, enable_progress_bar: false}
logger: false
"""

ARRAY_SPEC = SPEC.replace("{Synthetic: {shape: [8], size: 64, test_size: 16, num_classes: 3}}",
                          "{ArrayFile: {path: d.npz}}\n  val: {fraction: 0.25}")

SECONDS_PER_CASE = 30  # far above any case's time here: a case past it hangs


def edit(old: str, new: str, text: str = SPEC) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def arrays(inputs: np.ndarray, targets: np.ndarray) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        np.savez(path, inputs=inputs, targets=targets)
    return write


def floats(n: int = 64, bad: float | None = None, at: int = 5) -> np.ndarray:
    x = np.random.default_rng(0).random((n, 8), dtype=np.float32)
    if bad is not None:
        x[at, 3] = bad
    return x


CLASSES = np.random.default_rng(1).integers(0, 3, 64)


class Exploit:
    """Unpickled, it would run code: a file holding it must be refused, never loaded."""

    def __reduce__(self):
        return (os.system, ("echo owned > owned.txt",))


def truncated(write: Callable[[Path], None]) -> Callable[[Path], None]:
    def cut(path: Path) -> None:
        write(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return cut


@dataclass
class Case:
    """One hostile input: files to write, a command line, and what the user must see."""

    id: str
    argv: list[str]
    files: dict[str, str | bytes | Callable[[Path], None]] = field(default_factory=dict)
    code: int = 1
    says: str = ""  # in the message line
    at: str = r"spec\.yaml:\d+:\d+: "  # where the message line starts: the location
    keeps_run: bool = False  # it fails after training started: its run folder stays, with what it saved

    @property
    def source(self) -> str:
        """What every line of the message starts with: the file (or `usage error`)."""
        return self.at.split(":")[0]


def bad_spec(id: str, text: str | bytes, says: str, at: str = r"spec\.yaml:\d+:\d+: ") -> Case:
    """A spec `dtrain validate` must reject."""
    return Case(id, ["validate", "spec.yaml"], {"spec.yaml": text}, 1, says, at)


def bad_run(id: str, text: str, says: str, files: dict | None = None, code: int = 1,
            at: str = r"spec\.yaml:\d+:\d+: ", keeps_run: bool = False) -> Case:
    """A spec that only `dtrain run` can find wrong (its data, its run length): rejected before training."""
    return Case(id, ["run", "spec.yaml"], {"spec.yaml": text, **(files or {})}, code, says, at, keeps_run)


def bad_override(id: str, override: str, says: str, code: int = 2, at: str = "usage error: ") -> Case:
    return Case(id, ["run", "spec.yaml", "--print-spec", override], {"spec.yaml": SPEC}, code, says, at)


def bad_checkpoint(id: str, write: Callable[[Path], None] | bytes, says: str) -> Case:
    return Case(id, ["test", "model.ckpt"], {"model.ckpt": write}, 1, says, r"model\.ckpt: ")


def embedding(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """A checkpoint shaped as dtrain writes one, whose embedded spec `change` has altered."""
    def write(path: Path) -> None:
        spec = yaml.safe_load(SPEC)
        change(spec)
        torch.save({"dtrain_version": "0.1.0", "spec": spec, "state_dict": {}}, path)
    return write


def nested(depth: int):
    value = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_blocks(depth: int) -> str:
    return "description:\n" + "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "x: 1\n"


BOMB = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "lol"] * 9) + "]\n" for i in range(10))

CASES = [
    # -- YAML that is not a spec ---------------------------------------------------------------------------
    bad_spec("empty-file", "", "a spec is a mapping of sections", r"spec\.yaml:1:1: "),
    bad_spec("only-a-comment", "# nothing\n", "a spec is a mapping of sections", r"spec\.yaml:1:1: "),
    bad_spec("a-list", "- data\n- model\n", "a spec is a mapping of sections"),
    bad_spec("a-scalar", "hello\n", "a spec is a mapping of sections"),
    bad_spec("tab-indent", edit("  batch_size: 16", "\tbatch_size: 16"), "YAML syntax error"),
    bad_spec("unclosed-bracket", edit("input: [8]", "input: [8"), "YAML syntax error"),
    bad_spec("unclosed-quote", edit("name: hostile", "name: 'hostile"), "YAML syntax error"),
    bad_spec("duplicate-key", SPEC + "seed: 1\n", "duplicate key 'seed'"),
    bad_spec("integer-key", SPEC + "1: one\n", "unknown key '1' in the spec"),  # integer keys: epoch schedules
    bad_spec("float-key", SPEC + "1.5: one\n", "keys must be strings, got 1.5"),
    bad_spec("list-key", SPEC + "? [a, b]\n: x\n", "keys must be strings, got a list or mapping"),
    bad_spec("null-key", SPEC + "~: x\n", "keys must be strings, got None"),
    bad_spec("python-object-tag", SPEC + "description: !!python/object/apply:os.system ['echo owned']\n",
             "is not allowed: a spec holds plain data only"),
    bad_spec("python-name-tag", SPEC + "description: !!python/name:os.system ''\n", "is not allowed"),
    bad_spec("custom-tag", SPEC + "description: !shell ls\n", "YAML tag !shell is not allowed"),
    bad_spec("binary-tag", SPEC + "description: !!binary aGk=\n", "is not allowed"),
    bad_spec("set-tag", SPEC + "description: !!set {a, b}\n", "is not allowed"),
    bad_spec("recursive-alias", SPEC + "description: &a [*a]\n", "an alias refers to a value that holds it"),
    bad_spec("recursive-mapping-alias", SPEC + "description: &a {x: *a}\n", "an alias refers to a value that holds it"),
    bad_spec("undefined-alias", SPEC + "description: *nowhere\n", "YAML syntax error: found undefined alias"),
    bad_spec("alias-bomb", SPEC + BOMB, "the spec expands to more than 100,000 values"),
    bad_spec("flow-nesting-1000", SPEC + "description: " + "[" * 1000 + "]" * 1000 + "\n", "nested more than 100 deep"),
    bad_spec("block-nesting-150", SPEC + deep_blocks(150), "nested more than 100 deep"),
    bad_spec("nul-byte", SPEC + "description: a\x00b\n", "character #x0000 is not allowed"),
    bad_spec("bell-character", SPEC + "description: a\x07b\n", "character #x0007 is not allowed"),
    bad_spec("not-utf8", SPEC.encode() + b"description: \xff\xfe\n", "cannot read the spec", r"spec\.yaml: "),
    bad_spec("random-bytes", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
             "cannot read the spec", r"spec\.yaml: "),
    bad_spec("two-documents", SPEC + "---\nname: second\n", "expected a single document"),
    bad_spec("merge-of-a-scalar", SPEC + "trainer2:\n  <<: 3\n", "YAML syntax error"),
    bad_spec("over-the-size-limit", SPEC + "".join(f"k{i}: {i}\n" for i in range(30_000)),
             "the spec is longer than 256,000 characters", r"spec\.yaml: "),
    bad_spec("ten-thousand-unknown-keys", SPEC + "".join(f"k{i}: {i}\n" for i in range(10_000)),
             "more unknown keys in the spec"),
    # -- numbers: finite, and integers where integers are meant --------------------------------------------
    bad_spec("lr-nan", edit("lr: 0.1", "lr: .nan"), "lr is .nan, but numbers in a spec must be finite"),
    bad_spec("lr-inf", edit("lr: 0.1", "lr: .inf"), "lr is .inf, but numbers in a spec must be finite"),
    bad_spec("lr-minus-inf", edit("lr: 0.1", "lr: -.inf"), "lr is -.inf"),
    bad_spec("weight-decay-nan", edit("lr: 0.1", "lr: 0.1, weight_decay: .NaN"), "weight_decay is .nan"),
    bad_spec("momentum-inf", edit("lr: 0.1", "lr: 0.1, momentum: .Inf"), "momentum is .inf"),
    bad_spec("lr-string", edit("lr: 0.1", "lr: fast"), "lr must be"),
    bad_spec("batch-size-float", edit("batch_size: 16", "batch_size: 16.0"), "write 16, without the decimal point"),
    bad_spec("batch-size-exponent", edit("batch_size: 16", "batch_size: 1e3"), "write 1000, without the decimal"),
    bad_spec("batch-size-nan", edit("batch_size: 16", "batch_size: .nan"), "batch_size is .nan"),
    bad_spec("batch-size-zero", edit("batch_size: 16", "batch_size: 0"), "batch_size must be >= 1, got 0"),
    bad_spec("batch-size-negative", edit("batch_size: 16", "batch_size: -4"), "batch_size must be >= 1"),
    bad_spec("batch-size-string", edit("batch_size: 16", "batch_size: '16'"), "batch_size must be an integer"),
    bad_spec("batch-size-bool", edit("batch_size: 16", "batch_size: true"), "batch_size must be an integer"),
    bad_spec("batch-size-huge", edit("batch_size: 16", "batch_size: 1e400"), "batch_size is .inf"),
    bad_spec("max-epochs-float", edit("max_epochs: 1", "max_epochs: 2.0"), "write 2, without the decimal point"),
    bad_spec("max-epochs-inf", edit("max_epochs: 1", "max_epochs: .inf"), "max_epochs is .inf"),
    bad_spec("max-epochs-zero", edit("max_epochs: 1", "max_epochs: 0"), "max_epochs must be"),
    bad_spec("limit-batches-nan", edit("max_epochs: 1", "max_epochs: 1, limit_train_batches: .nan"),
             "limit_train_batches is .nan"),
    bad_spec("limit-batches-negative", edit("max_epochs: 1", "max_epochs: 1, limit_train_batches: -1"),
             "limit_train_batches must be"),
    bad_spec("clip-inf", edit("max_epochs: 1", "max_epochs: 1, gradient_clip_val: .inf"), "gradient_clip_val is .inf"),
    bad_spec("seed-negative", edit("seed: 0", "seed: -1"), "seed must be >= 0"),
    bad_spec("seed-too-big", edit("seed: 0", "seed: 99999999999999"), "seed must be"),
    bad_spec("seed-float", edit("seed: 0", "seed: 1.5"), "seed must be an integer"),
    bad_spec("val-fraction-one", edit("  batch_size: 16", "  val: {fraction: 1}\n  batch_size: 16"),
             "fraction must be"),
    bad_spec("val-fraction-nan", edit("  batch_size: 16", "  val: {fraction: .nan}\n  batch_size: 16"),
             "fraction is .nan"),
    bad_spec("input-zero", edit("input: [8]", "input: [0]"), "must be >= 1"),
    bad_spec("input-nan", edit("input: [8]", "input: [.nan]"), "item 0 of input is .nan"),
    bad_spec("input-float", edit("input: [8]", "input: [8.0]"), "write 8, without the decimal point"),
    bad_spec("input-empty", edit("input: [8]", "input: []"), "input needs at least 1 item"),
    bad_spec("out-features-float", edit("out_features: 3}", "out_features: 3.0}"), "write 3, without the decimal"),
    bad_spec("out-features-nan", edit("out_features: 3}", "out_features: .nan}"), "out_features is .nan"),
    bad_spec("out-features-zero", edit("out_features: 3}", "out_features: 0}"), "out_features must be"),
    bad_spec("dropout-nan", edit("    - ReLU\n", "    - Dropout: {p: .nan}\n"), "p is .nan"),
    bad_spec("step-size-inf", SPEC + "scheduler: {StepLR: {step_size: .inf}}\n", "step_size is .inf"),
    bad_spec("patience-float", SPEC + "callbacks: [{EarlyStopping: {monitor: train/loss, patience: 3.0}}]\n",
             "write 3, without the decimal point"),
    # -- names and paths: confined to the run folder ---------------------------------------------------------
    bad_spec("name-300-characters", edit("name: hostile", "name: " + "a" * 300), "has 300 characters; it may have at most 100"),
    bad_spec("name-parent", edit("name: hostile", "name: '..'"), "may hold only letters"),
    bad_spec("name-slash", edit("name: hostile", "name: a/../../b"), "may hold only letters"),
    bad_spec("name-absolute", edit("name: hostile", "name: /tmp/x"), "may hold only letters"),
    bad_spec("name-hidden", edit("name: hostile", "name: .hidden"), "may hold only letters"),
    bad_spec("name-empty", edit("name: hostile", "name: ''"), "may hold only letters"),
    bad_spec("name-control-characters", edit("name: hostile", 'name: "a\\x1eb\\nc\\e[2J"'),
             "'a\\x1eb\\nc\\x1b[2J' may hold only letters"),
    bad_spec("name-number", edit("name: hostile", "name: 3"), "name must be a string"),
    Case("name-from-dots-file", ["validate", "...yaml"], {"...yaml": edit("name: hostile\n", "")}, 1,
         "the run is named after the file, but '..' cannot name a run folder", r"\.\.\.yaml:\d+:\d+: "),
    Case("name-from-long-file", ["validate", "b" * 150 + ".yaml"], {"b" * 150 + ".yaml": edit("name: hostile\n", "")},
         1, "cannot name a run folder", "b{150}\\.yaml:\\d+:\\d+: "),
    Case("name-from-spaced-file", ["validate", "my spec.yaml"], {"my spec.yaml": edit("name: hostile\n", "")}, 1,
         "add name: to the spec", r"my spec\.yaml:\d+:\d+: "),
    bad_spec("checkpoint-filename-parent", SPEC + "callbacks: [{ModelCheckpoint: {filename: '../../x-{epoch}'}}]\n",
             "may not hold '/' or '\\' outside its {fields}"),
    bad_spec("checkpoint-filename-absolute", SPEC + "callbacks: [{ModelCheckpoint: {filename: '/tmp/x-{epoch}'}}]\n",
             "it names a file in dirpath"),
    bad_spec("checkpoint-filename-backslash", SPEC + "callbacks: [{ModelCheckpoint: {filename: '..\\..\\x'}}]\n",
             "it names a file in dirpath"),
    bad_spec("checkpoint-filename-empty", SPEC + "callbacks: [{ModelCheckpoint: {filename: ''}}]\n",
             "it names a file in dirpath"),
    bad_run("checkpoint-filename-bad-format", SPEC + "callbacks: [{ModelCheckpoint: {filename: '{epoch:q}'}}]\n",
            "has a format Python cannot apply"),
    bad_run("run-folder-under-a-file", edit("max_epochs: 1", "max_epochs: 1, default_root_dir: spec.yaml/runs"),
            "cannot make the run folder"),
    bad_run("checkpoint-folder-under-a-file", SPEC + "callbacks: [{ModelCheckpoint: {dirpath: spec.yaml/ckpt}}]\n",
            "cannot make the checkpoint folder"),
    # -- model size ---------------------------------------------------------------------------------------------
    bad_spec("repeat-100000", edit("    - ReLU\n", "    - repeat: {times: 100000, layers: [ReLU]}\n"),
             "times must be >= 1 and <= 10000"),
    bad_spec("nested-repeats", edit("    - ReLU\n", "    - repeat: {times: 300, layers: [{repeat: {times: 300, "
                                                   "layers: [ReLU]}}]}\n"), "more than 10,000 layers"),
    bad_spec("repeat-float", edit("    - ReLU\n", "    - repeat: {times: 2.0, layers: [ReLU]}\n"), "write 2"),
    bad_spec("repeat-zero", edit("    - ReLU\n", "    - repeat: {times: 0, layers: [ReLU]}\n"), "times must be"),
    bad_spec("block-param-float", edit("  layers:\n", "  blocks:\n    Wide: {params: {width: 16.0}, layers: "
                                                   "[{Linear: {out_features: '${width}'}}]}\n  layers:\n    - Wide\n"),
             "out_features is 16.0 (from '${width}'), but it must be an integer"),
    bad_spec("block-uses-itself", edit("  layers:\n", "  blocks:\n    Loop: {layers: [Loop]}\n  layers:\n    - Loop\n"),
             "blocks cannot recurse"),
    # -- structure ------------------------------------------------------------------------------------------------
    bad_spec("no-optimizer", edit("optimizer: {SGD: {lr: 0.1}}\n", ""), "needs the key 'optimizer'"),
    bad_spec("optimizer-number", edit("optimizer: {SGD: {lr: 0.1}}", "optimizer: 42"), "optimizer must be"),
    bad_spec("unknown-optimizer", edit("SGD", "SDG"), "unknown optimizer 'SDG'"),
    bad_spec("unknown-layer", edit("ReLU", "Relu"), "did you mean 'ReLU'"),
    bad_spec("unknown-top-key", edit("optimizer:", "optimiser:"), "unknown key 'optimiser'"),
    bad_spec("unknown-trainer-key", edit("max_epochs: 1", "max_epoch: 1"), "unknown key 'max_epoch'"),
    bad_spec("layers-empty", edit("  layers:\n    - Linear: {out_features: 16}\n    - ReLU\n    - Linear: "
                                  "{out_features: 3}\n", "  layers: []\n"), "needs at least 1 item"),
    bad_spec("two-schedulers", SPEC + "scheduler: {StepLR: {step_size: 1}, ExponentialLR: {gamma: 0.9}}\n",
             "names 2 LR schedulers"),
    bad_spec("scheduler-empty", SPEC + "scheduler: {interval: step}\n", "names no LR scheduler"),
    bad_spec("logger-number", edit("logger: false", "logger: 3"), "must be"),
    bad_spec("description-number", SPEC + "description: 3\n", "description must be a string"),
    bad_spec("task-typo", SPEC + "task: clasification\n", "task must be one of"),
    bad_spec("metrics-twice", SPEC + "metrics: [accuracy, accuracy]\n", "metric 'accuracy' is listed twice"),
    bad_spec("shape-mismatch", edit("out_features: 16}", "out_features: 16}\n    - Conv2d: {out_channels: 3, "
                                                         "kernel_size: 3}"), "cannot take its input"),
    # -- data ---------------------------------------------------------------------------------------------------
    bad_run("inputs-nan", ARRAY_SPEC, "sample 5 holds .nan in its inputs",
            {"d.npz": arrays(floats(bad=np.nan), CLASSES)}),
    bad_run("inputs-inf", ARRAY_SPEC, "sample 9 holds .inf in its inputs",
            {"d.npz": arrays(floats(bad=np.inf, at=9), CLASSES)}),
    bad_run("inputs-minus-inf-last", ARRAY_SPEC, "sample 63 holds -.inf",
            {"d.npz": arrays(floats(bad=-np.inf, at=63), CLASSES)}),
    bad_run("regression-target-nan", edit("out_features: 3}", "out_features: 1}", ARRAY_SPEC),
            "sample 2 holds .nan in its targets",
            {"d.npz": arrays(floats(), np.where(np.arange(64) == 2, np.nan, 0.5).astype(np.float32)[:, None])}),
    bad_run("dataloader-inputs-nan", edit("  batch_size: 16", "  batch_size: 16\n  loader: dataloader", ARRAY_SPEC),
            "sample 5 holds .nan", {"d.npz": arrays(floats(bad=np.nan), CLASSES)}),
    bad_run("nan-allowed-by-choice", edit("  batch_size: 16", "  batch_size: 16\n  check_finite: false", ARRAY_SPEC),
            "the training loss became nan", {"d.npz": arrays(floats(bad=np.nan), CLASSES)}, keeps_run=True),
    bad_run("sgd-lr-huge", edit("lr: 0.1", "lr: 1.0e+12"), "the training loss became nan", keeps_run=True),
    bad_run("npz-truncated", ARRAY_SPEC, "is not a readable .npz file",
            {"d.npz": truncated(arrays(floats(), CLASSES))}),
    bad_run("npz-not-a-zip", ARRAY_SPEC, "its zip archive is damaged", {"d.npz": b"PK not really a zip"}),
    bad_run("npz-empty-file", ARRAY_SPEC, "is not a .npz file", {"d.npz": b""}),
    bad_run("npz-missing", ARRAY_SPEC, "d.npz"),
    bad_run("npz-is-a-folder", ARRAY_SPEC, "is a folder", {"d.npz/x": b""}),
    bad_run("npz-without-targets", ARRAY_SPEC, "targets", {"d.npz": lambda p: np.savez(p, inputs=floats())}),
    bad_run("npz-object-array", ARRAY_SPEC, "holds Python objects",
            {"d.npz": lambda p: np.savez(p, inputs=np.array([{"a": 1}] * 64, dtype=object), targets=CLASSES)}),
    bad_run("pt-with-python-objects", edit("d.npz", "d.pt", ARRAY_SPEC), "holds Python objects",
            {"d.pt": lambda p: torch.save({"inputs": torch.zeros(64, 8), "targets": Exploit()}, p)}),
    bad_run("pt-truncated", edit("d.npz", "d.pt", ARRAY_SPEC), "not a file written by torch.save",
            {"d.pt": truncated(lambda p: torch.save({"inputs": torch.zeros(64, 8),
                                                     "targets": torch.zeros(64, dtype=torch.long)}, p))}),
    bad_run("inputs-and-targets-differ", ARRAY_SPEC, "they must pair up",
            {"d.npz": arrays(floats(), CLASSES[:10])}),
    # -- a run that would fail partway: found before training -----------------------------------------------------
    bad_run("one-cycle-too-short", SPEC + "scheduler: {OneCycleLR: {max_lr: 0.1, total_steps: 2}, interval: step}\n",
            "OneCycleLR's total_steps is 2, but the run steps it 4 times"),
    bad_run("one-cycle-epochs-too-short", edit("max_epochs: 1", "max_epochs: 3")
            + "scheduler: {OneCycleLR: {max_lr: 0.1, epochs: 1, steps_per_epoch: 1}}\n", "the run steps it 3 times"),
    bad_run("batch-norm-last-batch-of-one", edit("batch_size: 16", "batch_size: 9",
                                                 edit("    - ReLU\n", "    - BatchNorm1d\n    - ReLU\n")),
            "leave a last batch of one sample at batch_size 9"),
    bad_run("drop-last-fixes-batch-norm", edit("batch_size: 16", "batch_size: 9\n  drop_last: true",
                                               edit("    - ReLU\n", "    - BatchNorm1d\n    - ReLU\n")), "", code=0),
    bad_run("drop-last-drops-everything", edit("batch_size: 16", "batch_size: 100\n  drop_last: true"),
            "drop_last leaves no training batch"),
    # -- overrides --------------------------------------------------------------------------------------------------
    bad_override("override-no-equals", "trainer.max_epochs", "expected key.path=value"),
    bad_override("override-empty-key", "=3", "expected key.path=value"),
    bad_override("override-empty-part", "trainer..max_epochs=3", "empty key in the path"),
    bad_override("override-recursive-alias", "description=&a [*a]", "an alias refers to a value that holds it"),
    bad_override("override-alias-bomb", "description=" + BOMB.replace("\n", ", ").join("{}"), "expands to more than"),
    bad_override("override-python-tag", "description=!!python/object/apply:os.system [ls]", "is not allowed"),
    bad_override("override-bad-yaml", "data.batch_size=[", "not valid YAML"),
    bad_override("override-deep", "description=" + "[" * 500 + "]" * 500, "nested more than 100 deep"),
    bad_override("override-index-out-of-range", "model.layers.99.Linear=1", "is not an index of the list"),
    bad_override("override-into-a-value", "seed.x=1", "seed must be an integer", code=1, at=r"spec\.yaml:2:7: "),
    bad_override("override-nan", "trainer.max_epochs=.nan", "max_epochs is .nan", code=1,
                 at=r"spec\.yaml: override 'trainer\.max_epochs=\.nan': "),
    bad_override("override-float-batch", "data.batch_size=32.0", "write 32", code=1,
                 at=r"spec\.yaml: override 'data\.batch_size=32\.0': "),
    bad_override("override-escaping-name", "name=../../x", "may hold only letters", code=1,
                 at=r"spec\.yaml: override 'name=\.\./\.\./x': "),
    # -- checkpoints ----------------------------------------------------------------------------------------------
    bad_checkpoint("checkpoint-with-code", lambda p: torch.save({"x": Exploit()}, p), "it holds Python objects"),
    bad_checkpoint("checkpoint-plain-pickle", lambda p: p.write_bytes(pickle.dumps(Exploit())), "not a dtrain checkpoint"),
    bad_checkpoint("checkpoint-truncated", truncated(lambda p: torch.save({"a": torch.zeros(100)}, p)),
                   "torch.load cannot read it"),
    bad_checkpoint("checkpoint-empty", b"", "torch.load cannot read it"),
    bad_checkpoint("checkpoint-text", b"hello\n", "torch.load cannot read it"),
    bad_checkpoint("checkpoint-a-list", lambda p: torch.save([torch.ones(1)], p), "it holds a list"),
    bad_checkpoint("checkpoint-foreign-dict", lambda p: torch.save({"state_dict": {}}, p), "it has no 'dtrain_version'"),
    bad_checkpoint("checkpoint-spec-nested-deep", embedding(lambda spec: spec.update(description=nested(150))),
                   "its spec is nested more than 100 deep"),
    bad_checkpoint("checkpoint-spec-integer-key", embedding(lambda spec: spec.update({3: "x"})),
                   "its spec has a key that is not a string"),
    bad_checkpoint("checkpoint-spec-tensor", embedding(lambda spec: spec.update(description=torch.zeros(2))),
                   "its spec holds a Tensor"),
    bad_checkpoint("checkpoint-spec-nan", embedding(lambda spec: spec["optimizer"]["SGD"].update(lr=float("nan"))),
                   "lr is .nan"),
    bad_checkpoint("checkpoint-spec-escaping-name", embedding(lambda spec: spec.update(name="../../x")),
                   "may hold only letters"),
    Case("checkpoint-missing", ["test", "model.ckpt"], {}, 1, "no such checkpoint file", r"model\.ckpt: "),
    Case("checkpoint-is-a-folder", ["test", "model.ckpt"], {"model.ckpt/x": b""}, 1,
         "is neither a checkpoint nor a run folder", r"model\.ckpt: "),
    # -- the command line -------------------------------------------------------------------------------------------
    Case("spec-missing", ["validate", "nope.yaml"], {}, 1, "no such file", r"nope\.yaml: "),
    Case("spec-is-a-folder", ["validate", "folder"], {"folder/x": b""}, 1, "is a folder", r"folder: "),
    Case("run-spec-missing", ["run", "nope.yaml"], {}, 1, "no such file", r"nope\.yaml: "),
    Case("schema-into-missing-folder", ["schema", "-o", "no/such/folder/s.json"], {}, 1, "cannot write the schema",
         r"no/such/folder/s\.json: "),
    Case("layers-kind-markup", ["layers", "--kind", "[bold]x\ny"], {}, 2, "unknown --kind '[bold]x\\ny'",
         "usage error: "),
    Case("layers-unknown-kind", ["layers", "--kind", "optimiser"], {}, 2, "did you mean 'optimizer'", "usage error: "),
]


def _write(box: Path, files: dict) -> None:
    for name, content in files.items():
        path = box / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def _files(root: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime for p in root.rglob("*") if p.is_file()}


def _outside_run_folders(root: Path, before: dict[Path, float], after: dict[Path, float]) -> list[Path]:
    """Files written or changed since `before` that are not inside a run folder box/runs/<name>/version_<N>/."""
    changed = [p for p, mtime in after.items() if before.get(p) != mtime]
    return [p for p in changed if not re.fullmatch(r"box/runs/[^/]+/version_\d+/.+", p.relative_to(root).as_posix())]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_ends_in_a_located_message_and_its_exit_code(case, tmp_path, monkeypatch):
    box = tmp_path / "box"
    box.mkdir()
    _write(box, case.files)
    monkeypatch.chdir(box)
    before = _files(tmp_path)
    started = time.monotonic()
    result = CliRunner().invoke(app, case.argv)
    elapsed = time.monotonic() - started

    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"traceback: {result.exception!r}\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exit_code == case.code, result.stdout + result.stderr
    if case.code != 0:
        lines = result.stderr.splitlines()
        assert any(re.match(case.at, line) and case.says in line for line in lines), result.stderr
        assert all(re.match(case.source, line) for line in lines), result.stderr
        if case.keeps_run:  # stopped during training: the run folder stays, saying why
            assert '"status": "failed"' in next(box.glob("runs/*/version_*/results.json")).read_text()
        else:
            assert not list(box.glob("runs/*/version_*"))  # rejected: no run folder is left behind
    assert not _outside_run_folders(tmp_path, before, _files(tmp_path)), "wrote outside the run folder"
    assert not (box / "owned.txt").exists()  # no pickled payload ran
    assert elapsed < SECONDS_PER_CASE


def test_the_table_holds_a_hundred_cases_with_distinct_names():
    assert len(CASES) >= 100
    assert len({c.id for c in CASES}) == len(CASES)


def test_the_validate_cases_fail_alike_in_one_real_dtrain_process(tmp_path):
    """The same bad specs through the console entry point, in a subprocess: its schema stage (no torch import,
    so a second) finds most of them, each at its line; the rest pass it, and the table checks their later stage."""
    cases = [c for c in CASES if c.argv == ["validate", "spec.yaml"]]
    for case in cases:
        _write(tmp_path / case.id, case.files)
    result = subprocess.run([sys.executable, "-m", "declarative", "validate", "--schema-only",
                             *[f"{c.id}/spec.yaml" for c in cases]],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    found = 0
    for case in cases:
        own = [line for line in lines if line.startswith(f"{case.id}/")]
        if own:
            found += 1
            assert any(re.match(f"{re.escape(case.id)}/{case.at}", line) and case.says in line for line in own), own
    assert found >= len(cases) - 10  # all but the few that only the model build finds
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(c.id for c in cases)  # nothing else written
