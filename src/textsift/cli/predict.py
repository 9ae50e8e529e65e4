"""``textsift predict MODEL_DIR INPUT``: labels and probabilities, streamed in chunks.

Exactly one output row per input row, in input order: ``row`` is the input's row (or stdin line) number,
as error messages name it, and ``--keep-columns`` passes chosen input columns through as join keys.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import typer

from textsift.cli.app import app, err_console, handle_errors
from textsift.data.example import Example
from textsift.errors import ConfigError, DataError

READER_HELP = "Override the model's reader setting for this file."
RUNTIME_HELP = ("What runs the network: torch, onnx (the exported graph), onnx-int8 (its quantized copy), or auto: "
                "the int8 graph, else the fp32 one, when exported and onnxruntime is installed; else torch.")


def runtime_option() -> Any:
    return typer.Option("auto", "--runtime", help=RUNTIME_HELP)


def stdin_examples(pairs: bool, on_empty: str, lines: IO[str] | None = None) -> Iterator[Example]:
    """One example per line of stdin (pair models: TEXT<tab>SECOND TEXT); an empty line is an empty text."""
    from textsift.inference.predictor import is_empty

    for i, line in enumerate(lines if lines is not None else sys.stdin, start=1):
        line = line.rstrip("\r\n")
        if i == 1:  # a byte order mark (a file saved by Notepad or Excel, piped in) is not part of the first text
            line = line.removeprefix("\ufeff")
        pair = None
        if pairs and not line.strip():
            pair = ""  # an empty line is an empty pair: the --on-empty policy decides
        elif pairs:
            if "\t" not in line:
                raise DataError(
                    f"stdin, line {i}: this model classifies text pairs; give each pair as TEXT<tab>SECOND TEXT on one line."
                )
            line, pair = line.split("\t", 1)
        example = Example(text=line, text_pair=pair, row=i)
        if on_empty == "error" and is_empty(example):
            raise DataError(
                f"stdin, line {i}: the text is empty. Remove the line, or choose what to do with empty texts: --on-empty skip|predict."
            )
        yield example


def reader_options() -> dict[str, Any]:
    """The reader options ``predict`` and ``evaluate`` share (each overrides the model's own setting)."""
    return {
        "reader_type": typer.Option(None, "--reader", help="Reader: auto, csv, tsv, jsonl or parquet. " + READER_HELP),
        "encoding": typer.Option(None, "--encoding", help="Text encoding of the file, e.g. utf-8, latin-1. " + READER_HELP),
        "text_column": typer.Option(None, "--text-column", help=READER_HELP),
        "text_pair_column": typer.Option(None, "--text-pair-column", help=READER_HELP),
        "label_column": typer.Option(None, "--label-column", help=READER_HELP),
        "delimiter": typer.Option(None, "--delimiter", help="CSV/TSV field separator. " + READER_HELP),
    }


def overridden_reader(reader: Any, reader_type: str | None, **settings: Any) -> Any:
    from textsift.data.readers import with_overrides

    if settings.get("delimiter") == "\\t":
        settings["delimiter"] = "\t"
    return with_overrides(reader, type=reader_type, **settings)


_R = reader_options()


@app.command()
@handle_errors
def predict(
    model_dir: Path = typer.Argument(..., help="Model directory (or the run directory holding model/)."),
    input_file: str = typer.Argument(..., metavar="INPUT", help="A data file (CSV/TSV/JSONL/Parquet), or '-' for lines on stdin (pairs: TEXT<tab>SECOND)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output file, .csv or .jsonl (default: JSON Lines on stdout)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --output file."),
    top_k: int | None = typer.Option(None, "--top-k", min=1, help="Write the k most probable labels instead of all probabilities."),
    keep_columns: str | None = typer.Option(None, "--keep-columns", help="Input columns to copy into the output, comma-separated (e.g. id)."),
    on_empty: str = typer.Option("error", "--on-empty", help="An empty text: error (default), skip (written as skipped) or predict."),
    chunk_size: int = typer.Option(10_000, "--chunk-size", min=1, help="Examples held in memory at once."),
    threshold: float | None = typer.Option(None, "--threshold", min=0.0, max=1.0,
                                           help="multilabel: one threshold for every label (instead of the saved ones)."),
    at_least_one: bool | None = typer.Option(None, "--at-least-one/--allow-empty",
                                             help="multilabel: give every text at least its most probable label."),
    max_labels: int | None = typer.Option(None, "--max-labels", min=1, help="multilabel: at most this many labels per text."),
    reader_type: str | None = _R["reader_type"], encoding: str | None = _R["encoding"], text_column: str | None = _R["text_column"],
    text_pair_column: str | None = _R["text_pair_column"], label_column: str | None = _R["label_column"],
    delimiter: str | None = _R["delimiter"],
    runtime: str = runtime_option(),
    ray: bool = typer.Option(False, "--ray", help="Map batches over Ray Data (a local Ray, or --ray-address): rows stay in input order."),
    ray_actors: int = typer.Option(2, "--ray-actors", min=1, help="--ray: actors predicting at once (each loads the model)."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="--ray: the address of a running Ray cluster."),
) -> None:
    """Predict labels for every text of INPUT: one output row per input row, in order; memory stays bounded."""
    import dataclasses

    from textsift.data.readers import READER_OPTIONS, ReadOptions
    from textsift.evaluation.thresholds import default_decision
    from textsift.inference.output import RECORD_KEYS, score_columns, write_predictions
    from textsift.inference.predictor import EMPTY_POLICIES, load
    from textsift.util import atomic_write

    if on_empty not in EMPTY_POLICIES:
        raise ConfigError(f"--on-empty: expected one of {', '.join(EMPTY_POLICIES)}, got {on_empty!r}.")
    keep = tuple(c.strip() for c in keep_columns.split(",") if c.strip()) if keep_columns else ()
    suffix = output.suffix.lower() if output is not None else ".jsonl"
    if suffix not in (".csv", ".jsonl", ".json"):
        raise ConfigError(f"--output '{output}': use a .csv or .jsonl file name.")
    if output is not None and output.exists() and not overwrite:
        raise ConfigError(f"--output '{output}' already exists; pass --overwrite to replace it, or choose another file.")
    if output is not None and output.is_dir():
        raise ConfigError(f"--output '{output}' is a directory; give a file name ending in .csv or .jsonl.")
    predictor = load(model_dir, runtime=runtime)
    written = {*RECORD_KEYS, *score_columns(predictor.label_names, top_k)}
    clash = [c for c in keep if c in written]
    if clash:
        raise ConfigError(f"--keep-columns: {', '.join(clash)} would collide with an output column; rename the input column first.")
    if label_column is not None and label_column not in keep:
        if label_column in written:  # the gold label beside the predicted one needs a name of its own
            raise ConfigError(f"--label-column {label_column}: the output already has a '{label_column}' column (the prediction); "
                              "leave --label-column out, or rename the input column.")
        keep += (label_column,)  # predict needs no labels: a given label column is passed through
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
        if keep:
            raise ConfigError("--keep-columns and --label-column need a data file; stdin has only texts (its output has 'row', the line number).")
        examples: Iterator[Example] = stdin_examples(predictor.pairs, on_empty)
    else:
        from textsift.data.readers import reader_for_file

        model_reader = predictor.config.data.reader if reader_type is not None else reader_for_file(predictor.config.data.reader, input_file)
        reader = overridden_reader(model_reader, reader_type, encoding=encoding, text_column=text_column,
                                   text_pair_column=text_pair_column, delimiter=delimiter)
        options = ReadOptions(require_labels=False, on_empty="error" if on_empty == "error" else "keep", keep_columns=keep,
                              names={**READER_OPTIONS, "keep_columns": "--keep-columns", "on_empty": "--on-empty skip|predict"})
        examples = reader.iter(Path(input_file), options=options)
    fmt = "csv" if suffix == ".csv" else "jsonl"
    if ray:  # the same output, each --chunk-size window of rows mapped over Ray Data
        from textsift.serving.ray import RayPredictor

        predictor = RayPredictor(predictor, concurrency=ray_actors, address=ray_address)
    elif ray_address is not None:
        raise ConfigError("--ray-address is for --ray; add --ray, or leave the address out.")
    if output is None:
        write_predictions(sys.stdout, fmt, predictor, examples, top_k=top_k, chunk=chunk_size, on_empty=on_empty, keep_columns=keep)
        return
    counted: list[int] = []

    def write(f: IO[bytes]) -> None:
        import io

        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        counted.append(write_predictions(text, fmt, predictor, examples, top_k=top_k, chunk=chunk_size, on_empty=on_empty,
                                         keep_columns=keep))
        text.flush()
        text.detach()

    atomic_write(output, write)  # a complete file or none: an interrupted run leaves no half file
    err_console.print(f"wrote {counted[0]} predictions to {output}", markup=False, highlight=False)
