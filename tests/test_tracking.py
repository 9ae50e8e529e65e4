"""Tracking: MLflow against a real SQLite store and a real `mlflow server`, TensorBoard, and failure isolation."""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_workflow import write_workflow
from textsift.tracking import JsonlTracker, MultiTracker, Tracker
from textsift.workflow.runner import Workflow


def check_mlflow(uri: str, experiment: str, execution_id: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if r.info.run_name == execution_id]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    parent_id = parent[0].info.run_id
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id}
    assert set(children) == {"data", "splits", "model", "evaluation"}
    model = children["model"]
    # parameters: the step's settings, flattened
    assert model.data.params["config.trainer.epochs"] == "8" and model.data.params["config.model.type"] == "bag"
    assert model.data.tags["textsift.cache_hit"] == "false" and len(model.data.tags["textsift.fingerprint"]) == 24
    # per-epoch history and final metrics
    history = client.get_metric_history(model.info.run_id, "epoch/val/accuracy")
    assert [m.step for m in history] == list(range(1, 9))
    assert 0.0 <= history[-1].value <= 1.0 and "val/accuracy" in model.data.metrics
    assert "test/accuracy" in children["evaluation"].data.metrics and "test/ece" in children["evaluation"].data.metrics
    # artifacts: the model directory and the reports
    top = {a.path for a in client.list_artifacts(model.info.run_id)}
    assert {"model", "report"} <= top
    model_files = {Path(a.path).name for a in client.list_artifacts(model.info.run_id, "model")}
    assert {"model.safetensors", "config.yaml", "labels.json"} <= model_files
    report_files = {Path(a.path).name for a in client.list_artifacts(children["evaluation"].info.run_id, "report")}
    assert {"report.html", "confusion_matrix.png", "metrics.json"} <= report_files
    local = client.download_artifacts(children["evaluation"].info.run_id, "report/metrics.json")
    assert "test/accuracy" in json.loads(Path(local).read_text())


def test_mlflow_sqlite_store(tmp_path):
    path = write_workflow(tmp_path, tracking={"mlflow": {"experiment": "toy"}})
    Workflow.load(path).run("exec-1")
    uri = f"sqlite:///{tmp_path / '.textsift' / 'mlflow.db'}"
    check_mlflow(uri, "toy", "exec-1")
    assert (tmp_path / ".textsift" / "mlartifacts").is_dir()  # artifacts beside the database


@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on a port it picks itself (port 0, read back from its log): no race for a free port."""
    store = tmp_path / "server"
    store.mkdir()
    log = tmp_path / "mlflow-server.log"
    with log.open("w") as out:  # a file, not a pipe: a pipe nobody reads would block the server once full
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", "0", "--workers", "1",
             "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}", "--artifacts-destination", str(store / "artifacts")],
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )
    try:
        url = None
        while True:  # however long a slow machine takes; a server that dies is a failure at once
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {log.read_text()[-2000:]}")
            if url is None:
                found = re.search(r"running on (http://127\.0\.0\.1:[1-9][0-9]*)", log.read_text())
                url = found.group(1) if found else None
            if url is not None:
                try:
                    with urllib.request.urlopen(url + "/health", timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
            time.sleep(0.2)
        yield url, store
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_mlflow_server_over_http(tmp_path, mlflow_server):
    url, store = mlflow_server
    path = write_workflow(tmp_path, tracking={"mlflow": {"tracking_uri": url, "experiment": "over-http"}})
    Workflow.load(path).run("exec-http")
    check_mlflow(url, "over-http", "exec-http")
    assert any((store / "artifacts").rglob("model.safetensors"))  # uploaded to the server's artifact store
    assert not (tmp_path / ".textsift" / "mlflow.db").exists()


def test_tracking_server_down_is_a_warning_not_a_failure(tmp_path, caplog):
    with socket.socket() as held:  # bound and never listening: connections are refused, and no one else can take it
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        path = write_workflow(tmp_path, tracking={"mlflow": {"tracking_uri": f"http://127.0.0.1:{port}"}})
        with caplog.at_level(logging.WARNING, logger="textsift"):
            execution = Workflow.load(path).run("down")
    assert execution.results["evaluation"].metrics["test/accuracy"] > 0.5
    record = json.loads((tmp_path / ".textsift" / "executions" / "down" / "execution.json").read_text())
    assert record["status"] == "finished" and "mlflow" in record["tracking_failures"]
    warnings = [r.getMessage() for r in caplog.records if "Tracking with mlflow failed" in r.getMessage()]
    assert len(warnings) == 1, warnings  # warned once, then switched off: not once per step or epoch
    events = [json.loads(line) for line in (tmp_path / ".textsift" / "executions" / "down" / "tracking.jsonl").read_text().splitlines()]
    assert any(e["event"] == "metrics" and "epoch/val/accuracy" in e["metrics"] for e in events)  # the local log is complete


def test_tensorboard_event_files(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = write_workflow(tmp_path, tracking={"mlflow": None, "tensorboard": {}})
    Workflow.load(path).run("tb")
    acc = EventAccumulator(str(tmp_path / ".textsift" / "tensorboard" / "tb" / "model"))
    acc.Reload()
    assert "epoch/val/accuracy" in acc.Tags()["scalars"]
    assert [e.step for e in acc.Scalars("epoch/val/accuracy")] == list(range(1, 9))


def test_a_tracker_that_raises_is_switched_off(tmp_path):
    class Broken(Tracker):
        name = "broken"
        calls = 0

        def log_metrics(self, metrics, step=None):
            Broken.calls += 1
            raise ConnectionError("server down")

    local = JsonlTracker(tmp_path / "t.jsonl")
    multi = MultiTracker([Broken(), local])
    multi.log_metrics({"a": 1.0})
    multi.log_metrics({"a": 2.0})
    assert Broken.calls == 1 and multi.failed == {"broken": "ConnectionError: server down"}
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 2


def test_mlflow_without_artifacts(tmp_path):
    from mlflow.tracking import MlflowClient

    path = write_workflow(tmp_path, tracking={"mlflow": {"experiment": "light", "log_artifacts": False}})
    Workflow.load(path).run("light")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / '.textsift' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("light").experiment_id])
    model = next(r for r in runs if r.info.run_name == "model")
    assert "val/accuracy" in model.data.metrics and client.list_artifacts(model.info.run_id) == []
