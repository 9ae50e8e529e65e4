"""``textsift predict MODEL_DIR INPUT``: labels and probabilities, streamed in chunks."""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import typer

from textsift.cli.app import app, err_console, handle_errors
from textsift.data.example import Example
from textsift.errors import DataError


def _stdin_examples() -> Iterator[Example]:
    for i, line in enumerate(sys.stdin, start=1):
        if line.strip():
            yield Example(text=line.rstrip("\n"), row=i)


def _write(out: IO[str], fmt: str, predictor: object, examples_iter: Iterator[Example], top_k: int | None, chunk: int) -> int:
    names = predictor.label_names  # type: ignore[attr-defined]
    delimiter = predictor.config.data.label_delimiter  # type: ignore[attr-defined]
    cell = (lambda v: delimiter.join(v)) if predictor.multilabel else (lambda v: v)  # type: ignore[attr-defined]
    writer = None
    count = 0
    for examples, preds in predictor.predict_stream(examples_iter, chunk):  # type: ignore[attr-defined]
        if fmt == "csv":
            if writer is None:
                writer = csv.writer(out)
                cols = ["text", "labels" if predictor.multilabel else "label"] + ([f"top{i + 1}" for i in range(top_k)] + [f"top{i + 1}_probability" for i in range(top_k)] if top_k else [f"p_{n}" for n in names])
                writer.writerow(cols)
            tops = preds.top_k(top_k) if top_k else None
            for j, ex in enumerate(examples):
                if tops is not None:
                    row = [ex.text, cell(preds.labels[j])] + [n for n, _ in tops[j]] + [f"{p:.6f}" for _, p in tops[j]]
                else:
                    row = [ex.text, cell(preds.labels[j])] + [f"{p:.6f}" for p in preds.probabilities[j]]
                writer.writerow(row)
        else:
            for ex, record in zip(examples, preds.records(top_k)):
                out.write(json.dumps({"text": ex.text, **record}, ensure_ascii=False) + "\n")
        count += len(examples)
    return count


@app.command()
@handle_errors
def predict(
    model_dir: Path = typer.Argument(..., help="Model directory (or the run directory holding model/)."),
    input_file: str = typer.Argument(..., metavar="INPUT", help="A data file (CSV/TSV/JSONL/Parquet), or '-' for lines on stdin."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output file, .csv or .jsonl (default: JSON Lines on stdout)."),
    top_k: int | None = typer.Option(None, "--top-k", min=1, help="Write the k most probable labels instead of all probabilities."),
    chunk_size: int = typer.Option(10_000, "--chunk-size", min=1, help="Examples held in memory at once."),
    threshold: float | None = typer.Option(None, "--threshold", min=0.0, max=1.0,
                                           help="multilabel: one threshold for every label (instead of the saved ones)."),
    at_least_one: bool | None = typer.Option(None, "--at-least-one/--allow-empty",
                                             help="multilabel: give every text at least its most probable label."),
    max_labels: int | None = typer.Option(None, "--max-labels", min=1, help="multilabel: at most this many labels per text."),
) -> None:
    """Predict labels for every text of INPUT; memory stays bounded however large INPUT is."""
    import dataclasses

    from textsift import load
    from textsift.errors import ConfigError
    from textsift.evaluation.thresholds import default_decision

    predictor = load(model_dir)
    if threshold is not None or at_least_one is not None or max_labels is not None:
        if not predictor.multilabel:
            raise ConfigError("--threshold, --at-least-one and --max-labels are for multilabel models; this model is single-label.")
        base = predictor.decision or default_decision("multilabel", len(predictor.label_names))
        predictor.decision = dataclasses.replace(
            base,
            thresholds=[threshold] * len(predictor.label_names) if threshold is not None else base.thresholds,
            at_least_one=base.at_least_one if at_least_one is None else at_least_one,
            top_k=max_labels if max_labels is not None else base.top_k,
        )
    if input_file == "-":
        examples: Iterator[Example] = _stdin_examples()
    else:
        path = Path(input_file)
        if not path.is_file():
            raise DataError(f"Input file '{path}' does not exist.")
        examples = predictor.config.data.reader.iter(path, require_labels=False)  # type: ignore[attr-defined]
    if output is None:
        _write(sys.stdout, "jsonl", predictor, examples, top_k, chunk_size)
        return
    suffix = output.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".json"):
        raise DataError(f"--output '{output}': use a .csv or .jsonl file name.")
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            count = _write(f, "csv" if suffix == ".csv" else "jsonl", predictor, examples, top_k, chunk_size)
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)  # a complete file or none: an interrupted run leaves no half file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    err_console.print(f"wrote {count} predictions to {output}", markup=False, highlight=False)
