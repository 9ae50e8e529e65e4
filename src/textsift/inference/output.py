"""Prediction output: one record per input row, in input order, as CSV or JSON Lines."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from typing import IO, Any

from textsift.data.example import Example


def _cell(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, (list, dict)) else ("" if value is None else value)


#: every key a prediction record may have besides the kept input columns and the score columns
RECORD_KEYS = ("row", "text", "text_pair", "label", "labels", "skipped", "top_k", "probabilities")


def score_columns(label_names: Sequence[str], top_k: int | None) -> list[str]:
    """The CSV columns of the scores: the k most probable labels and their probabilities, or every label's."""
    k = min(top_k, len(label_names)) if top_k else 0  # no more columns than labels
    if k:
        return [f"top{i + 1}" for i in range(k)] + [f"top{i + 1}_probability" for i in range(k)]
    return [f"p_{n}" for n in label_names]


def write_predictions(
    out: IO[str], fmt: str, predictor: Any, examples_iter: Iterator[Example], *, top_k: int | None, chunk: int,
    on_empty: str = "error", keep_columns: tuple[str, ...] = (),
) -> int:
    """Write one record per example, in order; returns how many."""
    names = predictor.label_names
    top_k = min(top_k, len(names)) if top_k else top_k  # no more columns than labels
    delimiter = predictor.config.data.label_delimiter
    label_key = "labels" if predictor.multilabel else "label"
    cell = (lambda v: delimiter.join(v) if v is not None else "") if predictor.multilabel else (lambda v: "" if v is None else v)
    writer = None
    count = 0
    for examples, preds in predictor.predict_stream(examples_iter, chunk, on_empty=on_empty):
        if fmt == "csv":
            if writer is None:
                writer = csv.writer(out, lineterminator="\n")
                cols = ["row", *keep_columns, "text"] + (["text_pair"] if predictor.pairs else []) + [label_key]
                cols += score_columns(names, top_k)
                if on_empty == "skip":
                    cols.append("skipped")
                writer.writerow(cols)
            tops = preds.top_k(top_k) if top_k else None
            for j, ex in enumerate(examples):
                row = [ex.row, *(_cell((ex.columns or {}).get(c)) for c in keep_columns), ex.text]
                row += [ex.text_pair] if predictor.pairs else []
                row.append(cell(preds.labels[j]))
                if preds.is_skipped(j):
                    row += [""] * (2 * top_k if top_k else len(names))
                elif tops is not None:
                    row += [n for n, _ in tops[j]] + [f"{p:.6f}" for _, p in tops[j]]
                else:
                    row += [f"{p:.6f}" for p in preds.probabilities[j]]
                if on_empty == "skip":
                    row.append("empty text" if preds.is_skipped(j) else "")
                writer.writerow(row)
        else:
            for ex, record in zip(examples, preds.records(top_k)):
                head: dict[str, Any] = {"row": ex.row, **{c: (ex.columns or {}).get(c) for c in keep_columns}, "text": ex.text}
                if predictor.pairs:
                    head["text_pair"] = ex.text_pair
                out.write(json.dumps({**head, **record}, ensure_ascii=False, default=str) + "\n")
        count += len(examples)
    return count
