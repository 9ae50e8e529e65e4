"""The evaluation report: numbers, tables and figures about where a model fails, in one directory.

::

    report/
      metrics.json                 flat metrics (accuracy, F1s, MCC, ECE, NLL, Brier, per label)
      per_label.csv                precision, recall, F1, support, predicted count per label
      confusion_matrix.csv         counts (row: true label, column: predicted label)
      confusion_matrix_normalized.csv   the same, each row divided by its total
      confusion_matrix.png         both, as heatmaps
      classification_report.png    precision / recall / F1 heatmap
      calibration.csv              reliability bins: count, accuracy, mean confidence
      reliability.png              reliability diagram (and the uncalibrated curve, if calibrated)
      confidence.png               max-probability histograms, correct vs wrong
      errors.csv                   every misclassified example: text, true, predicted, confidence, length
      confused_pairs.csv           off-diagonal cells, most frequent first
      error_by_length.csv / .png   error rate in text-length bins
      predictions.csv              every example's true and predicted label (used by `textsift compare`)
      training_curves.png          loss, learning rate, validation metrics (reports written by `train`)
      report.json                  what was evaluated: model, data file and fingerprint, temperature, files
      report.html                  all of it on one self-contained page (images inlined)
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textsift.data.example import Example
from textsift.evaluation import plots
from textsift.evaluation.html import render_report
from textsift.evaluation.metrics import (
    calibration_bins, classification_metrics, confusion_matrix, expected_calibration_error, error_rate_by_length, probability_metrics,
    row_normalize, softmax, summary, top_confused_pairs,
)
from textsift.util import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

N_BINS = 15


@dataclass
class EvaluationData:
    """A model's logits on labeled examples, and the temperature its probabilities use."""

    examples: list[Example]
    y_true: np.ndarray
    logits: np.ndarray
    label_names: list[str]
    temperature: float = 1.0
    source: str = ""
    fingerprint: str | None = None
    model_dir: str | None = None

    def __post_init__(self) -> None:
        self.y_true = np.asarray(self.y_true, np.int64)
        self.probabilities = softmax(self.logits, self.temperature)
        self.y_pred = np.asarray(self.logits).argmax(axis=1) if len(self.y_true) else np.zeros(0, np.int64)
        self.confidence = self.probabilities.max(axis=1) if len(self.y_true) else np.zeros(0)
        self.correct = self.y_pred == self.y_true

    @property
    def lengths(self) -> np.ndarray:
        """Length in whitespace-separated words (both texts of a pair)."""
        return np.array([len(ex.text.split()) + (len(ex.text_pair.split()) if ex.text_pair else 0) for ex in self.examples])

    def metrics(self, prefix: str) -> dict[str, float]:
        out = classification_metrics(self.y_true, self.y_pred, self.label_names, prefix)
        out.update(probability_metrics(self.probabilities, self.y_true, prefix, N_BINS))
        if self.temperature != 1.0 and len(self.y_true):
            out[f"{prefix}/ece_uncalibrated"] = expected_calibration_error(softmax(self.logits), self.y_true, N_BINS)
        out[f"{prefix}/examples"] = float(len(self.y_true))
        return out


@dataclass
class Report:
    directory: Path
    metrics: dict[str, float]
    files: list[str] = field(default_factory=list)


def _csv(rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _read_training_log(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    steps, epochs = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a crash: the rest of the log is still good
            continue
        (steps if record.get("event") == "step" else epochs if record.get("event") == "epoch" else []).append(record)
    # after --resume the log repeats steps: keep the last record of each step / epoch
    steps = list({r["step"]: r for r in steps}.values())
    epochs = list({r["epoch"]: r for r in epochs}.values())
    return steps, epochs


def write_report(
    directory: str | Path, data: EvaluationData, *, prefix: str = "test", title: str | None = None,
    training_log: Path | None = None, uncalibrated_temperature: float | None = 1.0, errors_shown: int = 200,
) -> Report:
    """Write every artifact of the report for ``data`` into ``directory`` and return its metrics."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    names = data.label_names
    files: dict[str, bytes | str] = {}
    images: dict[str, bytes] = {}

    metrics = data.metrics(prefix)

    matrix = confusion_matrix(data.y_true, data.y_pred, len(names))
    normalized = row_normalize(matrix)
    files["confusion_matrix.csv"] = _csv([["true \\ predicted", *names], *([n, *map(int, row)] for n, row in zip(names, matrix))])
    files["confusion_matrix_normalized.csv"] = _csv(
        [["true \\ predicted", *names], *([n, *(f"{v:.6f}" for v in row)] for n, row in zip(names, normalized))]
    )
    images["confusion_matrix.png"] = plots.confusion_matrix_png(matrix, normalized, names)

    per_label = [
        {"label": n, "precision": metrics[f"{prefix}/per_label/{n}/precision"], "recall": metrics[f"{prefix}/per_label/{n}/recall"],
         "f1": metrics[f"{prefix}/per_label/{n}/f1"], "support": int(matrix[i].sum()), "predicted": int(matrix[:, i].sum())}
        for i, n in enumerate(names)
    ]
    files["per_label.csv"] = _csv([list(per_label[0])] + [list(r.values()) for r in per_label]) if per_label else ""
    rows = [r["label"] for r in per_label] + ["macro avg", "weighted avg"]
    col = lambda key, avg: [r[key] for r in per_label] + [metrics[f"{prefix}/macro_{avg}"], metrics[f"{prefix}/weighted_{avg}"]]  # noqa: E731
    support = [r["support"] for r in per_label] + [len(data.y_true)] * 2
    images["classification_report.png"] = plots.classification_report_png(
        rows, np.array(col("precision", "precision")), np.array(col("recall", "recall")), np.array(col("f1", "f1")), np.array(support)
    )

    bins = calibration_bins(data.confidence, data.correct, N_BINS)
    files["calibration.csv"] = _csv(
        [["bin_low", "bin_high", "count", "accuracy", "mean_confidence"]]
        + [[f"{bins.edges[b]:.4f}", f"{bins.edges[b + 1]:.4f}", int(bins.count[b]), f"{bins.accuracy[b]:.6f}", f"{bins.confidence[b]:.6f}"]
           for b in range(N_BINS)]
    )
    raw = None
    if uncalibrated_temperature is not None and data.temperature != uncalibrated_temperature:
        raw_probs = softmax(data.logits, uncalibrated_temperature)
        raw_bins = calibration_bins(raw_probs.max(axis=1), data.correct, N_BINS)
        raw = (raw_bins, raw_bins.ece)
    images["reliability.png"] = plots.reliability_png(bins, metrics.get(f"{prefix}/ece", 0.0), raw)
    images["confidence.png"] = plots.confidence_png(data.confidence, data.correct)

    lengths = data.lengths
    p_true = data.probabilities[np.arange(len(data.y_true)), data.y_true] if len(data.y_true) else np.zeros(0)
    wrong = np.flatnonzero(~data.correct)
    wrong = wrong[np.argsort(-data.confidence[wrong], kind="stable")]  # the most confident mistakes first
    has_pairs = any(ex.text_pair is not None for ex in data.examples)
    header = ["row", "text"] + (["text_pair"] if has_pairs else []) + ["true", "predicted", "confidence", "true_label_probability", "length_words", "length_chars"]
    error_rows = []
    for i in wrong:
        ex = data.examples[i]
        error_rows.append(
            [ex.row, ex.text] + ([ex.text_pair or ""] if has_pairs else [])
            + [names[data.y_true[i]], names[data.y_pred[i]], f"{data.confidence[i]:.6f}", f"{p_true[i]:.6f}", int(lengths[i]),
               len(ex.text) + len(ex.text_pair or "")]
        )
    files["errors.csv"] = _csv([header] + error_rows)

    pairs = top_confused_pairs(matrix, names)
    files["confused_pairs.csv"] = _csv([["true", "predicted", "count", "share_of_true"]] + [
        [p["true"], p["predicted"], p["count"], f"{p['share_of_true']:.6f}"] for p in pairs
    ])
    by_length = error_rate_by_length(lengths, data.correct)
    files["error_by_length.csv"] = _csv([["min_length_words", "max_length_words", "count", "error_rate"]] + [
        [r["min_length"], r["max_length"], r["count"], f"{r['error_rate']:.6f}"] for r in by_length
    ])
    images["error_by_length.png"] = plots.error_by_length_png(by_length, "words")
    files["predictions.csv"] = _csv([["row", "true", "predicted", "confidence"]] + [
        [ex.row, names[t], names[p], f"{c:.6f}"] for ex, t, p, c in zip(data.examples, data.y_true, data.y_pred, data.confidence)
    ])

    curves = None
    if training_log is not None and training_log.is_file():
        steps, epochs = _read_training_log(training_log)
        if steps or epochs:
            images["training_curves.png"] = plots.training_curves_png(steps, epochs)
            curves = epochs

    files["metrics.json"] = json.dumps(metrics, indent=1)
    info = {
        "title": title or f"Evaluation of {data.model_dir or 'a model'} on {data.source or 'data'}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model_dir": data.model_dir, "data": data.source, "data_fingerprint": data.fingerprint,
        "examples": int(len(data.y_true)), "labels": names, "prefix": prefix, "temperature": data.temperature,
        "files": sorted([*files, *images, "report.json", "report.html"]),
    }
    files["report.json"] = json.dumps(info, indent=1)
    files["report.html"] = render_report(
        info=info, headline=summary(metrics, prefix), prefix=prefix, per_label=per_label, pairs=pairs[:20],
        errors=[dict(zip(header, r)) for r in error_rows[:errors_shown]], n_errors=len(error_rows),
        by_length=by_length, images=images, epochs=curves,
    )
    for name, content in {**images, **files}.items():
        if isinstance(content, bytes):
            atomic_write_bytes(out / name, content)
        else:
            atomic_write_text(out / name, content)
    logger.info("Report: %s (%d files; open report.html)", out, len(files) + len(images))
    return Report(out, metrics, sorted([*files, *images]))
