"""``textsift evaluate MODEL_DIR DATA``: metrics of a saved model on labeled data."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from textsift.cli.app import app, console, handle_errors


def evaluate_model(model_dir: Path | str, data: Path | str, batch_size: int | None = None, prefix: str = "test") -> dict[str, float]:
    from textsift import load
    from textsift.data.labels import LabelSet
    from textsift.data.loading import read_source
    from textsift.evaluation.metrics import classification_metrics

    predictor = load(model_dir)
    dataset = read_source(str(Path(data).resolve()), predictor.config.data.reader)  # type: ignore[arg-type]
    labels = LabelSet(predictor.label_names).encode(dataset)
    logits = predictor.logits(dataset.examples, batch_size)
    metrics = classification_metrics(labels, logits.argmax(1), predictor.label_names, prefix)
    metrics[f"{prefix}/examples"] = float(len(dataset))
    return metrics


@app.command()
@handle_errors
def evaluate(
    model_dir: Path = typer.Argument(..., help="Model directory (or the run directory holding model/)."),
    data: Path = typer.Argument(..., help="Labeled data file, read with the model's reader settings."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    prefix: str = typer.Option("test", "--prefix", help="Prefix of the metric keys."),
) -> None:
    """Evaluate a trained model on a labeled file."""
    metrics = evaluate_model(model_dir, data, batch_size, prefix)
    if as_json:
        typer.echo(json.dumps(metrics))
        return
    from textsift.cli.train import summary_table

    console.print(summary_table(metrics, f"{data}"))
