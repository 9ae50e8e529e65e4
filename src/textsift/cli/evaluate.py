"""``textsift evaluate MODEL_DIR DATA``: metrics of a saved model on labeled data, and its report."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from textsift.cli.app import app, console, handle_errors
from textsift.cli.predict import overridden_reader, reader_options, runtime_option

_R = reader_options()


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
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --report folder (whole)."),
    reader_type: str | None = _R["reader_type"], encoding: str | None = _R["encoding"], text_column: str | None = _R["text_column"],
    text_pair_column: str | None = _R["text_pair_column"], label_column: str | None = _R["label_column"],
    delimiter: str | None = _R["delimiter"],
    runtime: str = runtime_option(),
) -> None:
    """Evaluate a trained model on a labeled file; with --report, write the full evaluation report."""
    from textsift.data.readers import READER_OPTIONS, ReadOptions
    from textsift.errors import ConfigError
    from textsift.evaluation.evaluate import evaluate as run
    from textsift.modeldir import find_model_dir, load_config_from

    if calibration_data is not None and not calibrate:
        raise ConfigError("--calibration-data is the data --calibrate fits on: add --calibrate, or drop --calibration-data.")
    calibrate_on: Path | bool = (calibration_data or True) if calibrate else False
    settings = {"encoding": encoding, "text_column": text_column, "text_pair_column": text_pair_column,
                "label_column": label_column, "delimiter": delimiter}
    reader = None
    if reader_type is not None or any(v is not None for v in settings.values()):
        from textsift.data.readers import reader_for_file

        own = load_config_from(find_model_dir(model_dir)).data.reader
        reader = overridden_reader(own if reader_type is not None else reader_for_file(own, data), reader_type, **settings)
    metrics = run(model_dir, data, report=report, calibrate_on=calibrate_on, batch_size=batch_size, prefix=prefix,
                  reader=reader, options=ReadOptions(names=READER_OPTIONS), overwrite=overwrite, runtime=runtime)
    if as_json:
        typer.echo(json.dumps(metrics))
        return
    from textsift.cli.train import summary_table

    console.print(summary_table(metrics, f"{data}"))
    if report is not None:
        console.print(f"report: {report / 'report.html'}", markup=False, highlight=False)
