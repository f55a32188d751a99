"""TensorBoard and CSV logs, read back the way their users read them."""

from __future__ import annotations

import csv

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from declarative.loggers import LOGGERS, CSVLogger, flatten_params
from trainer_specs import run


def read_events(folder) -> EventAccumulator:
    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def test_loggers_are_registered_by_their_lightning_names():
    # MLflow's and W&B's loggers are listed (and specs naming them validate) whether or not their extra is installed
    assert LOGGERS.names() == ["CSVLogger", "MLFlowLogger", "TensorBoardLogger", "WandbLogger"]


def test_tensorboard_scalars_are_logged_by_step(tmp_path):
    result = run(tmp_path, "trainer.max_epochs=3", "trainer.log_every_n_steps=2")
    events = read_events(result.run_dir)
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/accuracy", "val/loss", "val/accuracy", "test/loss", "test/accuracy",
            "train/loss_step", "epoch"} <= tags
    assert [e.step for e in events.Scalars("val/loss")] == [3, 6, 9]  # epoch ends, 3 steps per epoch
    assert [e.step for e in events.Scalars("train/loss_step")] == [2, 4, 6, 8]
    assert events.Scalars("val/loss")[-1].value == pytest.approx(result.val_metrics["val/loss"])
    assert events.Scalars("test/accuracy")[0].value == pytest.approx(result.test_metrics["test/accuracy"])


def test_tensorboard_hparams_go_into_the_same_event_file(tmp_path):
    result = run(tmp_path)
    assert len(list(result.run_dir.glob("events.out.tfevents.*"))) == 1
    assert [p for p in result.run_dir.iterdir() if p.is_dir()] == [result.run_dir / "checkpoints"]  # no sub-run
    content = read_events(result.run_dir).PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} >= {"val/loss", "val/accuracy", "test/accuracy", "hp_metric"}
    # default_hp_metric: Lightning's placeholder scalar, -1 at step 0
    assert [(e.step, e.value) for e in read_events(result.run_dir).Scalars("hp_metric")] == [(0, -1.0)]
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["trainer/max_epochs"].number_value == 2
    assert start.hparams["optimizer/SGD/lr"].number_value == 0.5
    assert start.hparams["trainer/precision"].string_value == "32-true"


def test_metrics_csv_has_a_row_per_logged_step_and_epoch(tmp_path):
    result = run(tmp_path, "trainer.log_every_n_steps=2")
    with open(result.run_dir / "metrics.csv") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert reader.fieldnames[:2] == ["step", "epoch"]
    step_rows = [(r["step"], r["epoch"]) for r in rows if r["train/loss_step"]]
    epoch_rows = [(r["step"], r["epoch"]) for r in rows if r["val/loss"]]
    assert step_rows == [("2", "0"), ("4", "1"), ("6", "1")]
    assert epoch_rows == [("3", "0"), ("6", "1")]
    assert float(rows[-1]["test/loss"]) == pytest.approx(result.test_metrics["test/loss"])
    hparams = yaml.safe_load((result.run_dir / "hparams.yaml").read_text())  # beside it, as Lightning writes it
    assert hparams["trainer"]["log_every_n_steps"] == 2 and hparams["loss"] == "CrossEntropyLoss"


def test_csv_logger_rewrites_the_header_when_a_metric_appears(tmp_path):
    logger = CSVLogger(str(tmp_path))
    logger.log_metrics({"epoch": 0, "train/loss": 1.5}, step=1)
    logger.log_metrics({"epoch": 0, "val/loss": 2.5}, step=2)
    logger.log_metrics({"epoch": 1, "train/loss": 0.5, "val/loss": 1.0}, step=3)
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines == ["step,epoch,train/loss,val/loss", "1,0,1.5,", "2,0,,2.5", "3,1,0.5,1.0"]


def test_no_logger_writes_no_logs(tmp_path):
    result = run(tmp_path, "logger=false")
    assert not (result.run_dir / "metrics.csv").exists()
    assert not list(result.run_dir.glob("events.out.tfevents.*"))


def test_one_logger_by_name(tmp_path):
    result = run(tmp_path, "logger=[CSVLogger]")
    assert (result.run_dir / "metrics.csv").exists()
    assert not list(result.run_dir.glob("events.out.tfevents.*"))


def test_flatten_params_makes_tensorboard_values():
    assert flatten_params({"trainer": {"max_epochs": 3, "max_steps": None}, "metrics": ["accuracy"],
                           "loss": "CrossEntropyLoss", "logger": False, "callbacks": []}) == {
        "trainer/max_epochs": 3, "trainer/max_steps": "None", "metrics": "['accuracy']",
        "loss": "CrossEntropyLoss", "logger": False, "callbacks": "[]"}
