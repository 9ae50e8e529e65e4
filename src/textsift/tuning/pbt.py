"""Population-based training on Ray Tune's PopulationBasedTraining scheduler.

Members train in parallel (one Ray actor each). Every ``interval`` epochs the bottom quantile
*exploits* (restarts from a top member's checkpoint, with its hyperparameters) and *explores*
(perturbs learning rate, weight decay, dropout and warmup by a factor in [0.8, 1.2], or resamples
them from the space). The same command runs on a Ray cluster: ``ray start --head`` there, then
``--ray-address auto`` (or RAY_ADDRESS) here. Checkpoints are textsift's own safetensors files.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from textsift.config import dump_yaml, load_config
from textsift.errors import ConfigError, TextsiftError
from textsift.training.callbacks import Callback
from textsift.tuning.space import SearchSpace, as_override
from textsift.util import atomic_write_text

logger = logging.getLogger(__name__)

# the hyperparameters PBT may perturb mid-training: the rest of a config (model shape, tokenizer) must stay fixed
PERTURBABLE = ("lr", "weight_decay", "dropout", "warmup")


def _perturbable(path: str) -> bool:
    last = path.split(".")[-1]
    return any(key in last for key in PERTURBABLE)


class RayReport(Callback):
    """After each epoch: save the checkpoint and report the metrics (and it) to Ray Tune."""

    def __init__(self, metric: str, mode: str) -> None:
        self.metric = metric
        self.mode = mode

    def on_epoch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        from ray import tune

        trainer.save_checkpoint()
        shown = {k: float(v) for k, v in metrics.items() if "/per_label/" not in k}
        shown["epoch"] = float(trainer.state.epoch)
        # Ray keys use '/' for nesting: report a flat name for the monitored metric
        shown["objective"] = float(metrics[self.metric])
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(trainer.checkpoint_path, Path(tmp) / "checkpoint.safetensors")
            (Path(tmp) / "epoch.json").write_text(json.dumps({"epoch": trainer.state.epoch}))
            tune.report(shown, checkpoint=tune.Checkpoint.from_directory(tmp))


def _trainable(params: dict[str, Any]) -> None:
    """One population member (runs in a Ray actor)."""
    from ray import tune

    from textsift.config import load_builtins
    from textsift.training.run import train

    load_builtins()
    for module in params["__imports"]:
        __import__(module)
    values = {k: v for k, v in params.items() if not k.startswith("__")}
    config = load_config(params["__config"], overrides=params["__overrides"] + [as_override(p, v) for p, v in values.items()])
    run_dir = Path(tune.get_context().get_trial_dir()) / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    warm = None
    checkpoint = tune.get_checkpoint()
    keep = Path(tempfile.mkdtemp())
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            shutil.copy(Path(d) / "checkpoint.safetensors", keep / "checkpoint.safetensors")
        warm = keep / "checkpoint.safetensors"
        logging.getLogger("textsift").warning("PBT member restarts from a checkpoint with %s", json.dumps(values))
    try:
        train(config, run_dir, callbacks=[RayReport(config.trainer.main_metric, config.trainer.main_metric_mode)],
              report=False, warm_start=warm)
    finally:
        shutil.rmtree(keep, ignore_errors=True)


def run_pbt(
    config_path: Path, space: SearchSpace, *, population: int, output: Path, overrides: list[str] | None = None,
    interval: int = 1, quantile: float = 0.25, resample_probability: float = 0.25, seed: int = 0,
    ray_address: str | None = None, cpus_per_member: float = 1.0, imports: list[str] | None = None,
    synch: bool = False,
) -> dict[str, Any]:
    """Population-based training of ``population`` members; writes ``pbt.log``, ``pbt.json`` and ``best_config.yaml``.

    ``synch``: every member waits at each interval until all have reached it, then the bottom quantile
    exploits and explores together (reproducible; the default lets the others go on training). A Ray
    instance already running (``ray.init`` before) is used as it is; one started here is shut down at the end.
    """
    import ray
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    overrides = list(overrides or [])
    base = load_config(config_path, overrides=overrides)
    fixed = [p for p in space.dimensions if not _perturbable(p)]
    if fixed:
        raise ConfigError(
            f"PBT perturbs hyperparameters mid-training, so it can only search {', '.join(PERTURBABLE)} settings; "
            f"{', '.join(fixed)} would change the model's shape. Tune those with the Optuna scheduler (the default)."
        )
    if base.trainer.early_stopping is not None:
        overrides.append("trainer.early_stopping=null")  # PBT decides who stops: every member trains its epochs
    if base.trainer.num_threads is None:
        overrides.append(f"trainer.num_threads={max(1, int(cpus_per_member))}")  # members share the machine
    metric, mode = base.trainer.main_metric, base.trainer.main_metric_mode
    output = output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    log_file = output / "pbt.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    pbt_logger = logging.getLogger("ray.tune.schedulers.pbt")
    pbt_logger.addHandler(handler)
    pbt_logger.setLevel(logging.INFO)
    started_ray = False
    try:
        import random

        import numpy as np

        random.seed(seed)  # PBT's explore/exploit choices use the driver's random modules
        np.random.seed(seed)
        if not ray.is_initialized():
            ray.init(address=ray_address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                     **({} if ray_address else {"num_cpus": max(2, int(population * cpus_per_member))}))
            started_ray = True
        scheduler = PopulationBasedTraining(
            time_attr="training_iteration", perturbation_interval=interval, hyperparam_mutations=space.ray(),
            quantile_fraction=quantile, resample_probability=resample_probability, perturbation_factors=(1.2, 0.8),
            synch=synch,  # by default asynchronous: only the exploited member restarts; the others keep training
        )
        param_space = {**space.ray(), "__config": str(Path(config_path).resolve()), "__overrides": overrides,
                       "__imports": list(imports or base.imports)}
        tuner = tune.Tuner(
            tune.with_resources(_trainable, {"cpu": cpus_per_member}),
            param_space=param_space,
            tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=population, metric="objective", mode=mode,
                                        reuse_actors=True),
            run_config=tune.RunConfig(name="pbt", storage_path=str(output / "ray"), verbose=0,
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=4)),
        )
        results = tuner.fit()
    finally:
        pbt_logger.removeHandler(handler)
        handler.close()
        if started_ray:
            ray.shutdown()
    errors = [r.error for r in results if r.error is not None]
    ok = [r for r in results if r.error is None and r.metrics and "objective" in r.metrics]
    if not ok:
        raise TextsiftError(f"PBT: no member finished ({len(errors)} failed: {'; '.join(sorted({str(e).splitlines()[0] for e in errors})[:3])}).")
    exploits = sum(1 for line in log_file.read_text().splitlines() if "[Exploit]" in line)
    best = results.get_best_result(metric="objective", mode=mode, scope="all")
    best_values = {k: v for k, v in best.config.items() if not k.startswith("__")}
    best_config = load_config(config_path, overrides=overrides + [as_override(p, v) for p, v in best_values.items()])
    atomic_write_text(output / "best_config.yaml", dump_yaml(best_config))
    members = []
    for r in results:
        history = r.metrics_dataframe
        members.append({
            "trial": r.path.rsplit("/", 1)[-1] if r.path else None, "error": str(r.error) if r.error else None,
            "final_config": {k: v for k, v in r.config.items() if not k.startswith("__")},
            "final": r.metrics.get("objective") if r.metrics else None,
            "best": float(history["objective"].max() if mode == "max" else history["objective"].min()) if history is not None and "objective" in history else None,
            "first_epoch": float(history["objective"].iloc[0]) if history is not None and "objective" in history and len(history) else None,
        })
    summary = {"metric": metric, "mode": mode, "population": population, "interval": interval, "exploits": exploits,
               "best": {"value": best.metrics.get("objective"), "config": best_values}, "members": members}
    atomic_write_text(output / "pbt.json", json.dumps(summary, indent=1, default=str))
    logger.info("PBT: %d members, %d exploit steps; best %s = %s", population, exploits, metric, best.metrics.get("objective"))
    return summary
