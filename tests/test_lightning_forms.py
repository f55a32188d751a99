"""Callbacks and loggers as a LightningCLI config writes them: under trainer:, one item without a
list, `{class_path, init_args}` — read as dtrain's own form, with errors still on the user's line."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from declarative.errors import SpecError
from trainer_specs import BASE, make_spec, quiet, results
from declarative.run import fit_spec

def committed_schema() -> dict:
    """schemas/spec.schema.json, what an editor reads through a spec's `$schema` line."""
    return json.loads((Path(__file__).resolve().parents[1] / "schemas" / "spec.schema.json").read_text())


LIGHTNING_CLI = BASE + """\
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
  callbacks:
    - class_path: lightning.pytorch.callbacks.EarlyStopping
      init_args:
        monitor: val/loss
        patience: 0
        min_delta: 100.0
    - class_path: lightning.pytorch.callbacks.LearningRateMonitor
"""


def test_a_lightning_cli_trainer_section_trains_as_dtrains_own_form(tmp_path):
    spec = make_spec(tmp_path, "trainer.max_epochs=5", text=LIGHTNING_CLI)
    assert [(c.name, c.kwargs) for c in spec.callbacks] == [
        ("EarlyStopping", {"monitor": "val/loss", "patience": 0, "min_delta": 100.0}), ("LearningRateMonitor", {})]
    assert spec.logger == ["CSVLogger"]
    result = fit_spec(spec, console=quiet())
    assert (result.stopped_early, result.epochs) == (True, 2)  # no improvement of 100 after the first: stopped
    assert (result.run_dir / "metrics.csv").exists() and not list(result.run_dir.glob("events.out.tfevents.*"))
    recorded = yaml.safe_load((result.run_dir / "spec.yaml").read_text())
    assert "callbacks" not in recorded["trainer"] and recorded["logger"] == ["CSVLogger"]  # the record: dtrain's form
    assert results(result)["epochs"] == 2


def test_an_argument_misspelt_in_init_args_is_located_on_its_line(tmp_path):
    text = LIGHTNING_CLI.replace("patience: 0", "patiense: 0")
    with pytest.raises(SpecError) as caught:
        make_spec(tmp_path, text=text)
    line = text.splitlines().index("        patiense: 0") + 1
    assert f"spec.yaml:{line}:9: EarlyStopping has no argument 'patiense' — did you mean 'patience'?" in str(caught.value)


def test_an_unknown_class_is_located_and_nothing_is_imported(tmp_path):
    text = LIGHTNING_CLI.replace("lightning.pytorch.callbacks.LearningRateMonitor", "os.system")
    with pytest.raises(SpecError) as caught:
        make_spec(tmp_path, text=text)
    line = text.splitlines().index("    - class_path: os.system") + 1
    assert f"spec.yaml:{line}:" in str(caught.value) and "unknown callback 'system'" in str(caught.value)


def test_callbacks_in_both_places_is_an_error_naming_the_trainer_one(tmp_path):
    text = LIGHTNING_CLI + "callbacks: [LearningRateMonitor]\n"
    with pytest.raises(SpecError) as caught:
        make_spec(tmp_path, text=text)
    line = text.splitlines().index("  callbacks:") + 1
    assert f"spec.yaml:{line}:3: callbacks is given twice, under trainer and at the top level" in str(caught.value)


def test_the_committed_schema_takes_the_lightning_forms_and_checks_their_arguments():
    schema = committed_schema()
    validator = jsonschema.Draft202012Validator(schema)
    spec = yaml.safe_load(LIGHTNING_CLI)
    assert not list(validator.iter_errors(spec))  # an editor with the $schema line shows no problem
    spec["trainer"]["callbacks"][0]["init_args"]["patiense"] = 1
    spec["trainer"]["callbacks"].append({"class_path": "lightning.pytorch.callbacks.NoSuchCallback"})
    messages = [error.message for error in validator.iter_errors(spec)]
    assert any("'patiense' was unexpected" in m for m in messages), messages
    assert any("NoSuchCallback" in m for m in messages), messages


CLI_SECTIONS = BASE.replace("optimizer: {SGD: {lr: 0.5}}\n", "").replace("seed: 0\n", "") + """\
seed_everything: 7
ckpt_path: null
optimizer:
  class_path: torch.optim.SGD
  init_args: {lr: 0.5, momentum: 0.9}
lr_scheduler:
  class_path: torch.optim.lr_scheduler.ReduceLROnPlateau
  init_args: {monitor: val/accuracy, mode: max, patience: 0}
"""


def test_lightning_cli_optimizer_scheduler_and_seed_read_as_dtrains(tmp_path):
    spec = make_spec(tmp_path, text=CLI_SECTIONS)
    assert (spec.optimizer.name, spec.optimizer.kwargs) == ("SGD", {"lr": 0.5, "momentum": 0.9})
    assert spec.scheduler.scheduler.name == "ReduceLROnPlateau" and spec.scheduler.monitor == "val/accuracy"
    assert spec.scheduler.scheduler.kwargs == {"mode": "max", "patience": 0}
    assert spec.seed == 7
    schema = committed_schema()
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(CLI_SECTIONS.replace(
        "monitor: val/accuracy, ", ""))))


def test_a_lightning_cli_misspelt_optimizer_argument_and_a_ckpt_path_are_located(tmp_path):
    text = CLI_SECTIONS.replace("momentum: 0.9", "momentun: 0.9").replace("ckpt_path: null", "ckpt_path: last.ckpt")
    with pytest.raises(SpecError) as caught:
        make_spec(tmp_path, text=text)
    lines = text.splitlines()
    message = str(caught.value)
    assert f"spec.yaml:{lines.index('ckpt_path: last.ckpt') + 1}:12: a spec does not resume" in message
    assert f"spec.yaml:{lines.index('  init_args: {lr: 0.5, momentun: 0.9}') + 1}:" in message and "'momentun'" in message


# A LightningCLI `--print_config` trainer section: every Trainer argument of Lightning 2.6 with its default
# (unset ones null), as Lightning's docs list them, a few set as a user would.
PRINT_CONFIG = """\
trainer:
  accelerator: cpu
  strategy: auto
  devices: 1
  num_nodes: 1
  precision: null
  logger: null
  callbacks: null
  fast_dev_run: false
  max_epochs: 2
  min_epochs: null
  max_steps: -1
  min_steps: null
  max_time: null
  limit_train_batches: null
  limit_val_batches: null
  limit_test_batches: null
  limit_predict_batches: null
  overfit_batches: 0.0
  val_check_interval: null
  check_val_every_n_epoch: 1
  num_sanity_val_steps: null
  log_every_n_steps: null
  enable_checkpointing: null
  enable_progress_bar: false
  enable_model_summary: null
  accumulate_grad_batches: 1
  gradient_clip_val: null
  gradient_clip_algorithm: null
  deterministic: null
  benchmark: null
  inference_mode: true
  use_distributed_sampler: true
  profiler: null
  detect_anomaly: false
  barebones: false
  plugins: null
  sync_batchnorm: false
  reload_dataloaders_every_n_epochs: 0
  default_root_dir: null
  model_registry: null
"""


def test_a_print_config_trainer_section_with_every_argument_validates_and_trains(tmp_path):
    text = BASE[:BASE.index("trainer:")] + PRINT_CONFIG
    spec = make_spec(tmp_path, text=text)
    assert (spec.trainer.max_epochs, spec.trainer.precision, spec.trainer.log_every_n_steps) == (2, "32-true", 50)
    assert spec.logger == ["TensorBoardLogger", "CSVLogger"] and spec.callbacks == []
    assert fit_spec(spec, console=quiet()).epochs == 2


def test_a_left_out_trainer_argument_away_from_its_default_says_why(tmp_path):
    text = BASE[:BASE.index("trainer:")] + PRINT_CONFIG.replace("  barebones: false", "  barebones: true")
    with pytest.raises(SpecError) as caught:
        make_spec(tmp_path, text=text)
    line = text.splitlines().index("  barebones: true") + 1
    assert str(caught.value).endswith(f"spec.yaml:{line}:14: barebones: True is not supported — dtrain's loop has no "
                                      "per-step overhead to switch off (leave it out, or False as Lightning's default)")
