"""``textsift tune``: an Optuna study over a config, one training run per trial.

::

    OUTPUT/
      study.db              the default storage (SQLite); any database URL with --storage
      trials/trial-0007/    each trial's run directory (config.yaml, metrics.jsonl, model/)
      trials.csv            every trial: number, state, value, parameters, test metrics, duration, error
      best_config.yaml      the best trial's complete config
      best_model/           the best trial's model directory
      optimization_history.png, param_importances.png
      study.json            summary: direction, best value and parameters, counts by state

Each trial reports the main validation metric after every epoch, so a pruner (median, Hyperband)
stops hopeless trials early. A trial that fails is recorded with its error and the study goes on.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textsift.config import dump_yaml, load_config
from textsift.errors import ConfigError, TextsiftError
from textsift.training.callbacks import Callback
from textsift.tuning.space import SearchSpace, as_override
from textsift.util import atomic_write_text, replace_dir

logger = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("median", "hyperband", "none")


class PruningCallback(Callback):
    """Reports the monitored metric to the trial each epoch; stops training when the pruner says so."""

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.pruned = False

    def on_epoch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        if self.metric not in metrics:
            raise ConfigError(f"The tuned metric '{self.metric}' is not among the epoch's metrics: {sorted(k for k in metrics if '/per_label/' not in k)}.")
        epoch = int(trainer.state.epoch)
        self.trial.report(float(metrics[self.metric]), epoch)
        if self.trial.should_prune():
            self.pruned = True
            trainer.state.should_stop = True
            trainer.state.stop_reason = f"pruned by the study's pruner after epoch {epoch} ({self.metric} = {metrics[self.metric]:.4f})"


@dataclass
class StudyResult:
    study: Any
    output: Path
    best_value: float | None
    best_params: dict[str, Any]
    counts: dict[str, int]


def _sampler(name: str, space: SearchSpace, seed: int) -> Any:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise ConfigError(f"--sampler '{name}': use one of {', '.join(SAMPLERS)}.")


def _pruner(name: str) -> Any:
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"--pruner '{name}': use one of {', '.join(PRUNERS)}.")


def _storage(url: str) -> Any:
    import optuna

    if url.startswith("sqlite:"):  # several processes share the file: wait for the lock instead of failing
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
    return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)


@contextmanager
def _creation_lock(storage: str) -> Iterator[None]:
    """A file lock beside an SQLite study database; a server database (PostgreSQL) handles this itself."""
    if storage.startswith("sqlite:///"):
        from filelock import FileLock

        path = Path(storage[len("sqlite:///"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock", timeout=300):
            yield
    else:
        yield


def run_study(
    config_path: Path, space: SearchSpace, *, trials: int, study_name: str, output: Path, storage: str | None = None,
    sampler: str = "tpe", pruner: str = "median", overrides: list[str] | None = None, resume: bool = False,
    tracking_uri: str | None = None, seed: int = 0, callbacks: list[Callback] | None = None,
) -> StudyResult:
    import optuna

    from textsift.training.run import train

    overrides = list(overrides or [])
    base = load_config(config_path, overrides=overrides)  # a broken base config fails before any trial
    metric, mode = base.trainer.main_metric, base.trainer.main_metric_mode
    for path, dim in space.dimensions.items():  # every path must be a real setting: check with one value now
        probe = dim.choices[0] if hasattr(dim, "choices") else dim.low
        try:
            load_config(config_path, overrides=overrides + [as_override(path, probe)])
        except ConfigError as exc:
            raise ConfigError(f"search space: {path}: {exc}") from None
    output.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(output / 'study.db').resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "maximize" if mode == "max" else "minimize"
    with _creation_lock(storage):  # two workers starting together must not both create the schema or the study
        store = _storage(storage)
        existing = [s.study_name for s in optuna.get_all_study_summaries(store)]
        if study_name in existing and not resume:
            raise ConfigError(f"Study '{study_name}' already exists in {storage}. Pass --resume to continue it (or run another worker on it), "
                              "or choose another --study name.")
        study = optuna.create_study(study_name=study_name, storage=store, sampler=_sampler(sampler, space, seed),
                                    pruner=_pruner(pruner), direction=direction, load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise ConfigError(f"Study '{study_name}' was created to {study.direction.name.lower()}, but {metric} is to be {direction}d.")
    tracker = _tracker(tracking_uri, study_name, output)

    def objective(trial: Any) -> float:
        values = space.suggest(trial)
        run_dir = output / "trials" / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        pruning = PruningCallback(trial, metric)
        extra: list[Callback] = []
        if tracker is not None:
            from textsift.tracking import TrackingCallback, flatten

            tracker.start_step(f"trial-{trial.number}", flatten(values), {"optuna.trial": str(trial.number)})
            extra.append(TrackingCallback(tracker))
        status = "failed"
        try:
            config = load_config(config_path, overrides=overrides + [as_override(p, v) for p, v in values.items()])
            if run_dir.exists():
                shutil.rmtree(run_dir)
            result = train(config, run_dir, callbacks=[pruning, *extra, *(callbacks or [])], report=False)
            (run_dir / "checkpoint.safetensors").unlink(missing_ok=True)  # the model directory is kept; resuming is not needed
            for key in ("test/accuracy", "test/macro_f1"):
                if key in result.metrics:
                    trial.set_user_attr(key, result.metrics[key])
            if pruning.pruned:
                status = "pruned"
                shutil.rmtree(run_dir / "model", ignore_errors=True)
                if tracker is not None:
                    tracker.log_metrics({"pruned_at_epoch": float(result.state.epoch)})
                raise optuna.TrialPruned(result.state.stop_reason)
            value = result.state.best_metric
            if value is None:
                raise ConfigError(f"Trial {trial.number} finished without a value of {metric}.")
            if tracker is not None:
                tracker.log_metrics({k: v for k, v in result.metrics.items() if "/per_label/" not in k})
            status = "finished"
            return float(value)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:1000])
            logger.warning("Trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
            raise
        finally:
            if tracker is not None:
                tracker.end_step(status)

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials, catch=(Exception,), gc_after_trial=True)
    logger.info("%d trials in %.0f s", trials, time.perf_counter() - t0)
    if tracker is not None:
        tracker.end_execution("finished")
    return write_outputs(study, output, config_path, overrides, metric)


def _tracker(tracking_uri: str | None, study_name: str, output: Path) -> Any:
    if tracking_uri is None:
        return None
    from textsift.tracking import MultiTracker
    from textsift.tracking.mlflow import MlflowTracker, default_artifacts

    uri = tracking_uri if tracking_uri != "default" else f"sqlite:///{(output / 'mlflow.db').resolve()}"
    artifacts = default_artifacts(output) if tracking_uri == "default" else None
    try:
        tracker = MultiTracker([MlflowTracker(uri, f"tune-{study_name}", artifacts)])
    except ImportError:
        logger.warning("MLflow is not installed (pip install 'textsift[tracking]'); tuning without tracking.")
        return None
    tracker.start_execution(study_name, {}, {"textsift.study": study_name})
    return tracker


def write_outputs(study: Any, output: Path, config_path: Path, overrides: list[str], metric: str) -> StudyResult:
    import optuna

    trials = study.get_trials(deepcopy=False)
    counts = dict(Counter(t.state.name.lower() for t in trials))
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        errors = Counter(t.user_attrs.get("error", t.state.name.lower()) for t in trials)
        summary = "; ".join(f"{n}x {e}" for e, n in errors.most_common(5))
        raise TextsiftError(f"Study '{study.study_name}': no trial completed ({len(trials)} trials: {summary}). Fix the config or the space and --resume.")
    param_names = sorted({p for t in trials for p in t.params})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["number", "state", "value", *param_names, "test/accuracy", "test/macro_f1", "duration_s", "error"])
    for t in trials:
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else ""
        writer.writerow([t.number, t.state.name.lower(), "" if t.value is None else t.value, *(t.params.get(p, "") for p in param_names),
                         t.user_attrs.get("test/accuracy", ""), t.user_attrs.get("test/macro_f1", ""), duration, t.user_attrs.get("error", "")])
    atomic_write_text(output / "trials.csv", buf.getvalue())
    best = study.best_trial
    best_config = load_config(config_path, overrides=overrides + [as_override(p, v) for p, v in best.params.items()])
    atomic_write_text(output / "best_config.yaml", dump_yaml(best_config))
    source = Path(best.user_attrs.get("run_dir", "")) / "model"
    if source.is_dir():
        tmp = output / ".best_model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp)
        replace_dir(tmp, output / "best_model")
    _plots(study, output)
    summary = {
        "study": study.study_name, "metric": metric, "direction": study.direction.name.lower(), "trials": counts,
        "best": {"number": best.number, "value": best.value, "params": best.params, **{k: v for k, v in best.user_attrs.items() if k != "error"}},
    }
    atomic_write_text(output / "study.json", json.dumps(summary, indent=1, default=str))
    return StudyResult(study, output, best.value, best.params, counts)


def _plots(study: Any, output: Path) -> None:
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    for name, plot in (("optimization_history.png", plot_optimization_history), ("param_importances.png", plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
                ax = plot(study)
            fig = ax.figure if hasattr(ax, "figure") else ax[0].figure
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            fig.savefig(output / name, dpi=100)
            import matplotlib.pyplot as plt

            plt.close(fig)
        except Exception as exc:  # noqa: BLE001 - e.g. importances need two completed trials with varying parameters
            logger.info("No %s: %s", name, exc)
