"""``textsift tune CONFIG --space SPACE``: Optuna search, or population-based training on Ray Tune."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from textsift.cli.app import app, console, handle_errors


@app.command()
@handle_errors
def tune(
    config: Path = typer.Argument(..., help="Base config file (YAML or Jsonnet)."),
    space: Path = typer.Option(..., "--space", help="Search space file: dotted config paths -> ranges."),
    trials: int = typer.Option(20, "--trials", "-n", min=1, help="Trials this worker runs (Optuna)."),
    study: str | None = typer.Option(None, "--study", help="Study name (default: the config file's name)."),
    storage: str | None = typer.Option(None, "--storage", help="Database URL shared by workers (default: sqlite in --output)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Directory for trials and results (default: runs/tune-STUDY)."),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe, random, grid or cmaes."),
    pruner: str = typer.Option("median", "--pruner", help="median, hyperband or none."),
    resume: bool = typer.Option(False, "--resume", help="Continue an existing study (also: join it as another worker)."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override a base setting: --set trainer.epochs=5."),
    scheduler: str = typer.Option("optuna", "--scheduler", help="optuna (search) or pbt (population-based training on Ray)."),
    population: int = typer.Option(4, "--population", min=2, help="PBT: members trained in parallel."),
    interval: int = typer.Option(1, "--interval", min=1, help="PBT: epochs between exploit/explore steps."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="PBT: an existing Ray cluster ('auto'); default: a local Ray."),
    mlflow: bool = typer.Option(False, "--mlflow", help="Track every trial in MLflow (default store: sqlite in --output)."),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (implies --mlflow)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler / the PBT scheduler."),
) -> None:
    """Search hyperparameters: every trial trains a fresh config (base + sampled overrides)."""
    from textsift.config import load_builtins
    from textsift.tuning.space import SearchSpace

    load_builtins()
    search = SearchSpace.load(space)
    name = study or config.stem
    output = output or Path("runs") / f"tune-{name}"
    from textsift.util import check_output_dir

    # a study's own folder is continued (--resume, or workers sharing it); any other folder with files is refused
    check_output_dir(output, "--output", ours=("study.db", "study.json", "trials", "pbt.log", ".study.lock", "study.db.lock"))
    if scheduler == "pbt":
        from textsift.tuning.pbt import run_pbt

        t = time.perf_counter()
        summary = run_pbt(config, search, population=population, output=output, overrides=list(overrides), interval=interval,
                          ray_address=ray_address, seed=seed)
        console.print(f"PBT: {population} members, {summary['exploits']} exploit steps, best {summary['metric']} = "
                      f"{summary['best']['value']:.4f} in {time.perf_counter() - t:.0f} s", markup=False, highlight=False)
        console.print(f"best config: {output / 'best_config.yaml'}", markup=False, highlight=False)
        return
    if scheduler != "optuna":
        from textsift.errors import ConfigError

        raise ConfigError(f"--scheduler '{scheduler}': use optuna or pbt.")
    from textsift.tuning.study import run_study

    result = run_study(config, search, trials=trials, study_name=name, output=output, storage=storage, sampler=sampler,
                       pruner=pruner, overrides=list(overrides), resume=resume,
                       tracking_uri=tracking_uri or ("default" if mlflow else None), seed=seed)
    table = Table(title=Text(f"study {name}: best {result.best_value:.4f}"), header_style="bold")
    table.add_column("parameter")
    table.add_column("best value", justify="right")
    for key, value in result.best_params.items():
        table.add_row(Text(key), Text(f"{value:.6g}" if isinstance(value, float) else str(value)))
    console.print(table)
    console.print(f"trials: {', '.join(f'{n} {s}' for s, n in result.counts.items())}", markup=False, highlight=False)
    console.print(f"best config: {output / 'best_config.yaml'}  best model: {output / 'best_model'}", markup=False, highlight=False)
