"""Loggers' own arguments as Lightning names them, MLflow and W&B offline, and several loggers at once."""

from __future__ import annotations

import csv
import importlib.util
import json
import struct
import sys
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import declarative.run as run_module
from declarative.callbacks import Callback
from declarative.errors import SpecError
from declarative.loggers import CSVLogger
from trainer_specs import BASE, make_spec, quiet, run

HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None
HAS_WANDB = importlib.util.find_spec("wandb") is not None


def read_events(folder: Path) -> EventAccumulator:
    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def collect(items) -> dict[tuple[str, int], list[float]]:
    """(name, step, value) triples → the values logged under each name at each step, sorted."""
    values: dict[tuple[str, int], list[float]] = {}
    for name, step, value in items:
        values.setdefault((name, int(step)), []).append(float(value))
    return {key: sorted(found) for key, found in values.items()}


def csv_scalars(path: Path) -> dict[tuple[str, int], list[float]]:
    with open(path) as file:
        return collect((name, row["step"], value) for row in csv.DictReader(file)
                       for name, value in row.items() if name != "step" and value)


def test_name_version_sub_dir_and_prefix_place_and_name_the_logs(tmp_path):
    result = run(tmp_path, "logger=[{TensorBoardLogger: {name: tb, version: 3, sub_dir: events, prefix: exp, "
                           "default_hp_metric: false}}, {CSVLogger: {name: csv, version: first, prefix: exp}}]")
    events = read_events(result.run_dir / "tb" / "version_3" / "events")
    tags = set(events.Tags()["scalars"])
    assert {"exp-train/loss", "exp-val/loss", "exp-test/accuracy", "epoch"} <= tags
    assert "hp_metric" not in tags and "val/loss" not in tags  # default_hp_metric: false: no placeholder
    metrics = csv_scalars(result.run_dir / "csv" / "first" / "metrics.csv")
    assert metrics[("exp-val/loss", 6)] == [pytest.approx(result.val_metrics["val/loss"])]
    assert metrics[("epoch", 3)] == [0]
    assert not list(result.run_dir.glob("events.out.tfevents.*")) and not (result.run_dir / "metrics.csv").exists()
    for folder in (result.run_dir / "csv" / "first", result.run_dir / "tb" / "version_3" / "events"):
        hparams = yaml.safe_load((folder / "hparams.yaml").read_text())  # Lightning's hparams.yaml: the resolved spec
        assert hparams["trainer"]["max_epochs"] == 2 and hparams["optimizer"] == {"SGD": {"lr": 0.5}}


@pytest.mark.parametrize("loggers, message", [
    ("[{CSVLogger: {version: ../../elsewhere}}]", "is not a folder name"),
    ("[{TensorBoardLogger: {name: checkpoints}}]", "'checkpoints' is the run folder's checkpoint folder"),
    ("[CSVLogger, {CSVLogger: {prefix: b}}]", "writes into the same folder as logger[0]"),
    ("[{TensorBoardLogger: {save_dir: lightning_logs}}]", "'save_dir' is left out on purpose: the run folder"),
    pytest.param("[{WandbLogger: {offline: true, log_model: true}}]", "log_model: true and offline: true do not go",
                 marks=pytest.mark.skipif(not HAS_WANDB, reason="wandb is not installed (pip install 'dtrain[wandb]')")),
])
def test_a_logger_argument_that_cannot_work_is_a_located_error_before_the_run_folder(tmp_path, loggers, message):
    text = BASE + f"logger: {loggers}\n"
    with pytest.raises(SpecError) as error:
        run(tmp_path, text=text)
    assert message in str(error.value)
    assert str(error.value).startswith(f"{tmp_path / 'spec.yaml'}:{text.count(chr(10))}:")  # the logger line
    assert not (tmp_path / "runs").exists()  # nothing written


def test_log_graph_adds_the_model_graph_and_leaves_training_unchanged(tmp_path):
    # BatchNorm and Dropout: tracing in train mode would move the running stats or draw random numbers
    text = BASE.replace("    - ReLU\n", "    - BatchNorm1d\n    - ReLU\n    - Dropout: {p: 0.5}\n")
    (tmp_path / "plain").mkdir()
    (tmp_path / "graphed").mkdir()
    plain = run(tmp_path / "plain", "logger=[TensorBoardLogger]", text=text)
    graphed = run(tmp_path / "graphed", "logger=[{TensorBoardLogger: {log_graph: true}}]", text=text)
    assert read_events(graphed.run_dir).Tags()["graph"]
    assert not read_events(plain.run_dir).Tags()["graph"]
    assert graphed.val_metrics == plain.val_metrics and graphed.test_metrics == plain.test_metrics


def test_csv_flush_logs_every_n_steps_writes_rows_at_most_every_n_steps(tmp_path):
    logger = CSVLogger(str(tmp_path), flush_logs_every_n_steps=3)
    for step in (1, 2, 3):
        logger.log_metrics({"epoch": 0, "train/loss": float(step)}, step=step)
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["step,epoch,train/loss", "1,0,1.0"]
    logger.log_metrics({"epoch": 0, "train/loss": 4.0}, step=4)  # 3 steps after the last write
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 5
    logger.log_metrics({"epoch": 1, "train/loss": 5.0}, step=5)
    logger.finalize("success")
    assert (tmp_path / "metrics.csv").read_text().splitlines()[-1] == "5,1,5.0"


@pytest.mark.parametrize("name, extra", [("MLFlowLogger", "mlflow"), ("WandbLogger", "wandb")])
def test_a_logger_whose_extra_is_missing_validates_and_then_says_what_to_install(tmp_path, monkeypatch, name, extra):
    monkeypatch.setitem(sys.modules, extra, None)  # as if not installed: importlib finds no such module
    text = BASE + f"logger: [CSVLogger, {name}]\n"
    spec = make_spec(tmp_path, text=text)  # the schema lists the logger either way
    with pytest.raises(SpecError) as error:
        run(tmp_path, text=text)
    assert f"pip install 'dtrain[{extra}]'" in str(error.value)
    assert str(error.value).startswith(f"{tmp_path / 'spec.yaml'}:{text.count(chr(10))}:")
    assert spec.logger == ["CSVLogger", name] and not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------------------------
# One run with every logger installed here: TensorBoard, CSV, MLflow's file store, W&B offline.

@pytest.fixture(scope="module")
def every_logger(tmp_path_factory):
    """The run and the folders of its MLflow store and W&B files."""
    folder = tmp_path_factory.mktemp("loggers")
    loggers = ["TensorBoardLogger", "CSVLogger"]
    if HAS_MLFLOW:
        loggers.append(f"{{MLFlowLogger: {{tracking_uri: 'file:{folder / 'mlruns'}', experiment_name: tiny, "
                       "run_name: first, tags: {team: vision}, log_model: true}}")
    if HAS_WANDB:
        loggers.append(f"{{WandbLogger: {{offline: true, save_dir: '{folder}', project: tiny}}}}")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in (("WANDB_SILENT", "true"), ("WANDB_CONSOLE", "off"), ("WANDB_MODE", "offline")):
            patch.setenv(key, value)
        result = run(folder, f"logger=[{', '.join(loggers)}]", "trainer.log_every_n_steps=2")
    return result, folder


def mlflow_scalars(folder: Path) -> tuple[dict[tuple[str, int], float], object]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"file:{folder / 'mlruns'}")
    (found,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    return collect((m.key, m.step, m.value) for key in found.data.metrics
                   for m in client.get_metric_history(found.info.run_id, key)), found


def wandb_records(folder: Path) -> list:
    """The records of W&B's offline run file: a LevelDB-style log (32 KiB blocks of length-prefixed chunks)
    after a 7-byte header, each record a protobuf of wandb's own `Record`."""
    from wandb.proto import wandb_internal_pb2

    (path,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    data, records, chunk = path.read_bytes(), [], b""
    position, block = 7, 32768
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        length, kind = struct.unpack("<HB", data[position + 4:position + 7])
        chunk += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def wandb_scalars(folder: Path) -> dict[tuple[str, int], list[float]]:
    rows = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            for record in wandb_records(folder) if record.WhichOneof("record_type") == "history"]
    return collect((name, row["trainer/global_step"], value) for row in rows for name, value in row.items()
                   if name != "trainer/global_step" and not name.startswith("_"))  # _step, _runtime: W&B's own


def tensorboard_scalars(folder: Path) -> dict[tuple[str, int], list[float]]:
    events = read_events(folder)
    return collect((tag, event.step, event.value) for tag in events.Tags()["scalars"] if tag != "hp_metric"
                   for event in events.Scalars(tag))


def test_every_logger_gets_the_same_scalars(every_logger):
    result, folder = every_logger
    expected = csv_scalars(result.run_dir / "metrics.csv")
    assert expected[("val/loss", 6)] == [pytest.approx(result.val_metrics["val/loss"])]
    received = {"TensorBoard": tensorboard_scalars(result.run_dir)}
    if HAS_MLFLOW:
        received["MLflow"] = mlflow_scalars(folder)[0]
    if HAS_WANDB:
        received["W&B"] = wandb_scalars(folder)
    for name, scalars in received.items():
        assert scalars.keys() == expected.keys(), name
        for key, values in expected.items():  # TensorBoard keeps float32
            assert scalars[key] == pytest.approx(values, rel=1e-6), (name, key)


@pytest.mark.skipif(not HAS_MLFLOW, reason="mlflow is not installed (pip install 'dtrain[mlflow]')")
def test_mlflow_run_has_the_settings_tags_status_and_checkpoints(every_logger):
    _, folder = every_logger
    _, found = mlflow_scalars(folder)
    assert found.info.status == "FINISHED" and found.info.run_name == "first"
    assert found.data.tags["team"] == "vision"
    assert found.data.params["trainer/max_epochs"] == "2" and found.data.params["optimizer/SGD/lr"] == "0.5"
    from mlflow.tracking import MlflowClient

    uploaded = MlflowClient(f"file:{folder / 'mlruns'}").list_artifacts(found.info.run_id, "model/checkpoints/last")
    assert [artifact.path for artifact in uploaded] == ["model/checkpoints/last/last.ckpt"]  # log_model: true


@pytest.mark.skipif(not HAS_WANDB, reason="wandb is not installed (pip install 'dtrain[wandb]')")
def test_wandb_offline_run_has_the_config_and_the_history(every_logger):
    _, folder = every_logger
    records = wandb_records(folder)
    config = {item.key: json.loads(item.value_json) for record in records
              if record.WhichOneof("record_type") == "config" for item in record.config.update}
    assert config["trainer"]["max_epochs"] == 2 and config["optimizer"] == {"SGD": {"lr": 0.5}}
    (ended,) = [r for r in records if r.WhichOneof("record_type") == "exit"]  # the run's end, for wandb sync
    assert ended.exit.exit_code == 0


@pytest.mark.skipif(not HAS_MLFLOW, reason="mlflow is not installed (pip install 'dtrain[mlflow]')")
def test_a_tracking_service_that_refuses_is_a_located_error_and_leaves_no_run_folder(tmp_path):
    text = BASE + "logger: [CSVLogger, {MLFlowLogger: {tracking_uri: 'nosuch://host'}}]\n"
    with pytest.raises(SpecError, match="MLFlowLogger could not start: .*nosuch://host") as error:
        run(tmp_path, text=text)
    assert str(error.value).startswith(f"{tmp_path / 'spec.yaml'}:{text.count(chr(10))}:")
    assert not list((tmp_path / "runs").glob("*/version_*"))


@pytest.mark.skipif(not HAS_MLFLOW, reason="mlflow is not installed (pip install 'dtrain[mlflow]')")
def test_mlflow_log_model_all_uploads_each_checkpoint_as_it_is_written(tmp_path):
    from mlflow.tracking import MlflowClient

    uploads = []

    class Failing(Callback):  # the run fails after its second epoch: log_model: true would upload nothing
        def on_train_epoch_end(self, trainer, model):
            uploads.append(len(list_checkpoints()))
            if trainer.current_epoch == 1:
                raise RuntimeError("stopped by the test")

    def list_checkpoints():
        client = MlflowClient(f"file:{tmp_path / 'mlruns'}")
        runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
        return [a.path for a in client.list_artifacts(runs[0].info.run_id, "exp/model/checkpoints")] if runs else []

    logger = (f"logger=[{{MLFlowLogger: {{tracking_uri: 'file:{tmp_path / 'mlruns'}', experiment_name: tiny, "
              "log_model: all, checkpoint_path_prefix: exp}}]")
    spec = make_spec(tmp_path, logger, "callbacks=[{ModelCheckpoint: {save_top_k: -1}}]", "trainer.max_epochs=3")
    build = run_module.build_callbacks
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_module, "build_callbacks", lambda spec: build(spec) + [Failing()])
        with pytest.raises(Exception, match="stopped by the test"):
            run_module.fit_spec(spec, console=quiet())
    # the epoch's checkpoint is written at the boundary after the epoch's end: one more by each next epoch end
    assert uploads == [0, 1]
    assert list_checkpoints() == ["exp/model/checkpoints/epoch=0-step=3"]


def test_tensorboard_max_queue_and_flush_secs_reach_the_summary_writer(tmp_path):
    spec = make_spec(tmp_path, "logger=[{TensorBoardLogger: {max_queue: 5, flush_secs: 7}}]")
    assert spec.logger == [{"TensorBoardLogger": {"max_queue": 5, "flush_secs": 7}}]
    from declarative.loggers import TensorBoardLogger

    logger = TensorBoardLogger(str(tmp_path), max_queue=5, flush_secs=7)
    writer = logger.experiment  # TensorBoard's own SummaryWriter, which queues and flushes the events
    assert (writer.max_queue, writer.flush_secs) == (5, 7)
    logger.finalize("success")
