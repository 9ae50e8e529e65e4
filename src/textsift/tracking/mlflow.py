"""MLflow tracking through ``MlflowClient``: one run per execution, a nested run per step.

Default store: an embedded SQLite file (``sqlite:///HOME/mlflow.db``) with artifacts beside it in
``HOME/mlartifacts``; any tracking URI (``http://host:5000``, a PostgreSQL-backed server) by setting.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from textsift.tracking.base import Tracker

logger = logging.getLogger(__name__)

MAX_PARAM = 6000  # MLflow's limit on a parameter value


class MlflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, tracking_uri: str, experiment: str, artifact_location: str | None = None, log_artifacts: bool = True) -> None:
        # a server that is down should cost seconds, not MLflow's default minutes of retries
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_location = artifact_location
        self.upload = log_artifacts  # False: runs carry parameters and metrics only (tracking.mlflow.log_artifacts)
        self.parent: str | None = None
        self.current: str | None = None

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return str(found.experiment_id)
        return str(self.client.create_experiment(self.experiment, artifact_location=self.artifact_location))

    def _log(self, run_id: str, params: dict[str, str] | None = None, metrics: dict[str, float] | None = None, step: int | None = None) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        param_list = [Param(k[:250], v[:MAX_PARAM]) for k, v in (params or {}).items()]
        metric_list = [Metric(k, float(v), now, step or 0) for k, v in (metrics or {}).items()]
        for i in range(0, max(len(param_list), 1), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(run_id, metrics=metric_list if i == 0 else [], params=param_list[i:i + 100])

    def start_execution(self, execution_id: str, params: dict[str, str], tags: dict[str, str]) -> None:
        run = self.client.create_run(self._experiment_id(), run_name=execution_id, tags={**tags, "textsift.execution_id": execution_id})
        self.parent = run.info.run_id
        self._log(self.parent, params=params)
        logger.info("MLflow: run %s in experiment '%s' at %s", self.parent, self.experiment, self.tracking_uri)

    def start_step(self, step: str, params: dict[str, str], tags: dict[str, str]) -> None:
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        assert self.parent is not None
        experiment_id = self.client.get_run(self.parent).info.experiment_id
        run = self.client.create_run(experiment_id, run_name=step, tags={**tags, MLFLOW_PARENT_RUN_ID: self.parent, "textsift.step": step})
        self.current = run.info.run_id
        self._log(self.current, params=params)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        run = self.current or self.parent
        if run is not None and metrics:
            self._log(run, metrics=metrics, step=step)

    def log_artifacts(self, path: Path, name: str) -> None:
        run = self.current or self.parent
        if run is None or not self.upload:
            return
        if path.is_dir():
            self.client.log_artifacts(run, str(path), artifact_path=name)
        elif path.is_file():
            self.client.log_artifact(run, str(path), artifact_path=name)

    def end_step(self, status: str) -> None:
        if self.current is not None:
            self.client.set_terminated(self.current, status=_status(status))
            self.current = None

    def end_execution(self, status: str) -> None:
        if self.parent is not None:
            self.client.set_terminated(self.parent, status=_status(status))


def _status(status: str) -> str:
    return {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}.get(status, "FINISHED")


def default_uri(home: Path) -> str:
    return f"sqlite:///{(home / 'mlflow.db').resolve()}"


def default_artifacts(home: Path) -> str:
    path = (home / "mlartifacts").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


