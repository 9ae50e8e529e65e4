"""``textsift train``: from a config file, or from flags alone for quick use."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from textsift.cli.app import Settings, app, console, err_console, handle_errors


def summary_table(metrics: dict[str, float], title: str) -> Table:
    table = Table(title=Text(title), show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if "/per_label/" not in key:
            counted = key.endswith(("/examples", "/folds")) and float(value).is_integer()  # a count, not a score
            table.add_row(Text(key), f"{int(value)}" if counted else f"{value:.4f}")
    return table


def _names_a_model(config: Path | None, overrides: list[str]) -> bool:
    """Whether the config file or a --set names the model (else train chooses one: --model auto)."""
    if any(o.split("=", 1)[0].strip() == "model" or o.startswith("model.") for o in overrides):
        return True
    if config is None or not config.is_file():
        return config is not None  # a missing file: let loading say so
    from textsift.config.loader import read_raw_config
    from textsift.errors import TextsiftError

    try:
        raw = read_raw_config(config)
    except TextsiftError:  # loading it again below gives the error
        return True
    return isinstance(raw, dict) and "model" in raw


def _load_train_config(config: Path | None, overrides: list[str]) -> object:
    """The run's config; a data file given where the config goes gets "did you mean --train"."""
    from textsift.config import load_config
    from textsift.data.readers import DATA_SUFFIXES
    from textsift.errors import ConfigError

    hint = ""
    if config is not None:
        suffixes = [x.lower() for x in config.suffixes if x.lower() != ".gz"]
        if suffixes and suffixes[-1] in DATA_SUFFIXES:
            hint = f" '{config}' looks like a data file: did you mean `textsift train --train {config}`?"
            if suffixes[-1] != ".json":  # JSON can hold a config; the others cannot
                raise ConfigError(f"The first argument of train is a config file (YAML or Jsonnet).{hint}")
    try:
        return load_config(config, overrides=overrides)
    except ConfigError as exc:
        if hint:
            raise ConfigError(f"{exc}{hint}") from None
        raise


@app.command()
@handle_errors
def train(
    config: Path | None = typer.Argument(None, help="Config file (YAML or Jsonnet). Optional with --train."),
    train_file: str | None = typer.Option(None, "--train", help="Training data file (sets data.train)."),
    validation_file: str | None = typer.Option(None, "--validation", help="Validation data file."),
    test_file: str | None = typer.Option(None, "--test", help="Test data file, evaluated after training."),
    model: str | None = typer.Option(
        None, "--model", help="Model type: auto (the default when neither this nor the config names one), linear_bag, linear, bag, cnn, lstm, "
        "gru, transformer, or an import path."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Run directory (default: runs/MODEL-TIME)."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override a setting: --set trainer.epochs=5."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip the evaluation report (plots, report.html) after training."),
    checkpoint_every: int | None = typer.Option(
        None, "--checkpoint-every", min=1, help="Also checkpoint every N steps (and at an epoch's end once trainer.checkpoint_every_s have passed)."
    ),
    budget: float | None = typer.Option(
        None, "--budget", min=1, help="--model auto: seconds to spend on candidates (default: a few bag runs; two are always tried)."),
    candidates_opt: str | None = typer.Option(
        None, "--candidates", help="--model auto: the candidates to try, comma-separated, in this order of preference "
        "(default linear_bag,bag; also linear, linear-C30, linear-C3, bag-chars)."),
    no_data_checks: bool = typer.Option(
        False, "--no-data-checks", help="Skip the cheap data checks before training (sets data.checks=false; see textsift debug data)."),
) -> None:
    """Train a model, evaluate it on the test data, and save the run and its model directory."""
    from textsift import train as run_training
    from textsift.errors import ConfigError

    flags = []
    if train_file:
        flags.append(f"data.train={train_file}")
    if validation_file:
        flags.append(f"data.validation={validation_file}")
    if test_file:
        flags.append(f"data.test={test_file}")
    auto_run = output is not None and (output / "candidates").is_dir()  # an auto run being resumed
    auto = model == "auto" or (model is None and (auto_run or not _names_a_model(config, overrides)))
    if model and model != "auto":
        flags.append(f"model={model}")
    if budget is not None and not auto:
        raise ConfigError("--budget is the time --model auto spends choosing a model; this run trains one named model.")
    if candidates_opt is not None and not auto:
        raise ConfigError("--candidates are what --model auto chooses from; this run trains one named model.")
    if config is None and resume and output is not None and (output / "config.yaml").is_file() and not auto_run:
        from textsift.training.run import untrained_run_files

        # `textsift train --resume -o RUN` continues RUN as it was; a run that never trained has nothing to
        # continue, and its saved config may hold the very mistake that stopped it: flags alone describe the retry
        if not (train_file and untrained_run_files(output) is not None):
            config = output / "config.yaml"
    if config is None and not train_file:
        raise ConfigError("Give a config file, or at least --train FILE (e.g. textsift train --train data.csv --model bag).")
    for flag in flags:  # flags name file paths relative to the working directory
        key, _, value = flag.partition("=")
        if key.startswith("data."):
            flags[flags.index(flag)] = f"{key}={Path(value).resolve()}"
    if no_data_checks:
        flags.append("data.checks=false")
    cfg = _load_train_config(config, flags + list(overrides))
    if output is None:
        name = "auto" if auto else cfg.model.type.replace(":", ".")  # type: ignore[attr-defined]
        output = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    callbacks = []
    if Settings.verbosity >= 0 and int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 shows progress
        from textsift.cli.progress import ProgressBar

        callbacks.append(ProgressBar(err_console))
    if auto:
        from textsift.training.auto import candidate_configs, train_auto

        names = None if candidates_opt is None else [n.strip() for n in candidates_opt.split(",") if n.strip()]
        candidates = candidate_configs(lambda extra: _load_train_config(config, flags + extra + list(overrides)), names)
        result = train_auto(candidates, output, budget_s=budget, resume=resume, callbacks=callbacks,
                            report=not no_report)
        console.print(f"auto: chose {result.state.stop_reason.removeprefix('auto chose ')}; leaderboard: {output / 'leaderboard.csv'}",
                      markup=False, highlight=False)
    else:
        result = run_training(cfg, output, resume=resume, callbacks=callbacks, checkpoint_every_steps=checkpoint_every,
                              report=not no_report)
    if result.metrics:
        test = {k: v for k, v in result.metrics.items() if k.startswith("test/")}
        shown = test or result.metrics
        console.print(summary_table(shown, "test metrics" if test else "validation metrics (best epoch)"))
    console.print(f"model directory: {result.model_dir}", markup=False, highlight=False)
    if result.run_dir is not None and (result.run_dir / "report" / "report.html").is_file():
        console.print(f"report: {result.run_dir / 'report' / 'report.html'}", markup=False, highlight=False)
    if "test/accuracy" in result.metrics:
        console.print(f"test accuracy: {result.metrics['test/accuracy']:.4f}", markup=False, highlight=False)
