"""``textsift debug data``: check a config's data before training (spaCy-style pass / warn / fail per check)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.text import Text

from textsift.cli.app import app, console, err_console, handle_errors

debug_app = typer.Typer(no_args_is_help=True, help="Check data before training: leakage, duplicates, label noise, lengths.")
app.add_typer(debug_app, name="debug")

STYLES = {"pass": ("✔", "green"), "info": ("ℹ", "blue"), "warn": ("⚠", "yellow"), "fail": ("✘", "red")}


@debug_app.command("data")
@handle_errors
def data(
    config: Path | None = typer.Argument(None, help="Config file (YAML or Jsonnet), as for train. Optional with --train."),
    train_file: str | None = typer.Option(None, "--train", help="Training data file (sets data.train)."),
    validation_file: str | None = typer.Option(None, "--validation", help="Validation data file."),
    test_file: str | None = typer.Option(None, "--test", help="Test data file."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override a setting, as for train: --set data.reader.text_column=body."),
    report: Path | None = typer.Option(None, "--report", help="Write report.html, report.json and CSVs (label_issues.csv, leakage.csv, ...) here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into an existing --report folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object (each check's first 20 rows)."),
    label_noise: bool = typer.Option(True, "--label-noise/--no-label-noise", help="Find label errors by confident learning (cross-validated models: the slow check)."),
    folds: int = typer.Option(10, "--folds", min=2, help="Cross-validation folds of the label-noise check."),
) -> None:
    """Check the data a config (or --train/--validation/--test) names; exit code 1 if a check fails."""
    from textsift.config import load_config
    from textsift.debug import debug_data
    from textsift.errors import CheckpointError, ConfigError

    if config is None and not train_file:
        raise ConfigError("Give a config file, or at least --train FILE (e.g. textsift debug data --train data.csv --test test.csv).")
    flags = [f"data.{split}={Path(value).resolve()}" for split, value in
             (("train", train_file), ("validation", validation_file), ("test", test_file)) if value]
    cfg = load_config(config, overrides=flags + list(overrides))
    if report is not None and report.exists() and (not report.is_dir() or any(report.iterdir())) and not overwrite:
        raise CheckpointError(f"--report '{report}' already exists and is not empty. Pass --overwrite to write into it, or choose another folder.")
    status = None if as_json else err_console.status("checking")
    if status is not None:
        status.start()
    try:
        result = debug_data(cfg, label_noise=label_noise, folds=folds,
                            progress=(lambda step: status.update(f"checking {step}")) if status is not None else None)
    finally:
        if status is not None:
            status.stop()
    if report is not None:
        from textsift.debug.report import write_data_report

        write_data_report(result, report, title=f"textsift debug data: {config or train_file}")
    if as_json:
        typer.echo(json.dumps(result.as_dict(), default=float))
    else:
        for check in result.checks:
            icon, colour = STYLES[check.status]
            console.print(Text.assemble((f"{icon} {check.name}", f"bold {colour}"), f": {check.message}"), soft_wrap=True)
        counts = result.counts()
        colour = "red" if counts["fail"] else ("yellow" if counts["warn"] else "green")
        console.print(Text(result.summary_line(), style=f"bold {colour}"))
        if report is not None:
            console.print(f"report: {report / 'report.html'}", markup=False, highlight=False)
    if result.failed:
        raise typer.Exit(1)
