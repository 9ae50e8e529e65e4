"""``textsift evaluate MODEL_DIR DATA``: metrics of a saved model on labeled data, and its report."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from textsift.cli.app import app, console, handle_errors


def evaluate_model(model_dir: Path | str, data: Path | str, batch_size: int | None = None, prefix: str = "test") -> dict[str, float]:
    from textsift.evaluation.evaluate import evaluate as run

    return run(model_dir, data, batch_size=batch_size, prefix=prefix)


@app.command()
@handle_errors
def evaluate(
    model_dir: Path = typer.Argument(..., help="Model directory (or the run directory holding model/)."),
    data: Path = typer.Argument(..., help="Labeled data file, read with the model's reader settings."),
    report: Path | None = typer.Option(None, "--report", help="Write the evaluation report (plots, tables, report.html) here."),
    calibrate: bool = typer.Option(
        False, "--calibrate", help="Fit temperature scaling on the model's validation data first, and save it in the model directory."
    ),
    calibration_data: Path | None = typer.Option(
        None, "--calibration-data", help="With --calibrate: fit the temperature on this labeled file instead."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    prefix: str = typer.Option("test", "--prefix", help="Prefix of the metric keys."),
) -> None:
    """Evaluate a trained model on a labeled file; with --report, write the full evaluation report."""
    from textsift.errors import ConfigError
    from textsift.evaluation.evaluate import evaluate as run

    if calibration_data is not None and not calibrate:
        raise ConfigError("--calibration-data is the data --calibrate fits on: add --calibrate, or drop --calibration-data.")
    calibrate_on: Path | bool = (calibration_data or True) if calibrate else False
    metrics = run(model_dir, data, report=report, calibrate_on=calibrate_on, batch_size=batch_size, prefix=prefix)
    if as_json:
        typer.echo(json.dumps(metrics))
        return
    from textsift.cli.train import summary_table

    console.print(summary_table(metrics, f"{data}"))
    if report is not None:
        console.print(f"report: {report / 'report.html'}", markup=False, highlight=False)
