"""The tracker interface, the JSON Lines tracker, and the fan-out that keeps a tracking failure from stopping work.

One execution is one run; each step is a run nested under it. Metrics go to the current step's run.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from textsift.training.callbacks import Callback

logger = logging.getLogger(__name__)


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested settings as dotted keys with string values (as trackers store parameters)."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for key, sub in value.items():
            out.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list)) for v in value):
        for i, sub in enumerate(value):
            out.update(flatten(sub, f"{prefix}.{i}"))
    else:
        out[prefix or "value"] = json.dumps(value, default=str) if not isinstance(value, str) else value
    return out


class Tracker:
    """Receives what happens in an execution. Every method may be a no-op."""

    name = "tracker"

    def start_execution(self, execution_id: str, params: dict[str, str], tags: dict[str, str]) -> None: ...

    def start_step(self, step: str, params: dict[str, str], tags: dict[str, str]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...

    def log_artifacts(self, path: Path, name: str) -> None: ...

    def end_step(self, status: str) -> None: ...

    def end_execution(self, status: str) -> None: ...


class JsonlTracker(Tracker):
    """One JSON object per event in ``tracking.jsonl`` of the execution: always on, no dependencies."""

    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.step: str | None = None

    def _write(self, event: str, **data: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"event": event, "time": time.time(), "step_name": self.step, **data}, default=str) + "\n")

    def start_execution(self, execution_id: str, params: dict[str, str], tags: dict[str, str]) -> None:
        self._write("start_execution", execution_id=execution_id, params=params, tags=tags)

    def start_step(self, step: str, params: dict[str, str], tags: dict[str, str]) -> None:
        self.step = step
        self._write("start_step", params=params, tags=tags)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._write("metrics", metrics=metrics, step=step)

    def log_artifacts(self, path: Path, name: str) -> None:
        self._write("artifacts", path=str(path), name=name)

    def end_step(self, status: str) -> None:
        self._write("end_step", status=status)
        self.step = None

    def end_execution(self, status: str) -> None:
        self._write("end_execution", status=status)


class MultiTracker(Tracker):
    """Sends every call to each tracker. A tracker that raises is warned about once and switched off:
    a tracking server that is down never stops training."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = list(trackers)
        self.failed: dict[str, str] = {}

    def _each(self, method: str, *args: Any, **kwargs: Any) -> None:
        for tracker in list(self.trackers):
            try:
                getattr(tracker, method)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any tracking failure must not stop the work
                self.trackers.remove(tracker)
                self.failed[tracker.name] = f"{type(exc).__name__}: {exc}"
                logger.warning(
                    "Tracking with %s failed (%s: %s); going on without it. The local tracking.jsonl is complete.",
                    tracker.name, type(exc).__name__, str(exc).splitlines()[0][:300] if str(exc) else "",
                )

    def start_execution(self, execution_id: str, params: dict[str, str], tags: dict[str, str]) -> None:
        self._each("start_execution", execution_id, params, tags)

    def start_step(self, step: str, params: dict[str, str], tags: dict[str, str]) -> None:
        self._each("start_step", step, params, tags)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._each("log_metrics", metrics, step)

    def log_artifacts(self, path: Path, name: str) -> None:
        self._each("log_artifacts", path, name)

    def end_step(self, status: str) -> None:
        self._each("end_step", status)

    def end_execution(self, status: str) -> None:
        self._each("end_execution", status)


class TrackingCallback(Callback):
    """Forwards each epoch's metrics (and logged step losses) from the Trainer to a tracker."""

    lazy_loss = True  # reads the loss only where it logs or shows it

    def __init__(self, tracker: Tracker, every_steps: int = 50) -> None:
        self.tracker = tracker
        self.every = every_steps

    def on_batch_end(self, trainer: Any, loss: float) -> None:
        s = trainer.state
        if s.global_step % self.every == 0:
            self.tracker.log_metrics({"train/step_loss": float(loss), "lr": float(s.lr)}, step=s.global_step)

    def on_epoch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        shown = {k: float(v) for k, v in metrics.items() if "/per_label/" not in k and k != "epoch"}
        self.tracker.log_metrics({f"epoch/{k}": v for k, v in shown.items()}, step=trainer.state.epoch)
