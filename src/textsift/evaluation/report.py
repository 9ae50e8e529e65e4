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
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textsift.data.example import Example
from textsift.evaluation.html import render_report
from textsift.evaluation.thresholds import Decision, default_decision
from textsift.evaluation.metrics import (
    calibration_bins, classification_metrics, confusion_matrix, expected_calibration_error, error_rate_by_length, probability_metrics,
    multilabel_metrics, row_normalize, sigmoid, softmax, summary, top_confused_pairs,
)
from textsift.util import atomic_write_bytes, atomic_write_text, replace_dir

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
    decision: Decision | None = None  # tuned thresholds (multilabel; binary positive class)

    def __post_init__(self) -> None:
        self.multilabel = np.asarray(self.y_true).ndim == 2
        if self.multilabel:
            self.y_true = np.asarray(self.y_true, np.int64)
            self.probabilities = sigmoid(self.logits, self.temperature)
            decision = self.decision or default_decision("multilabel", len(self.label_names))
            self.y_pred = decision.apply(self.probabilities)
            self.correct = np.all(self.y_pred == self.y_true, axis=1)  # the whole set right
            self.confidence = np.zeros(len(self.y_true))
            return
        self.y_true = np.asarray(self.y_true, np.int64)
        self.probabilities = softmax(self.logits, self.temperature)
        if self.decision is not None and len(self.y_true):
            self.y_pred = self.decision.apply(self.probabilities)
        else:
            self.y_pred = np.asarray(self.logits).argmax(axis=1) if len(self.y_true) else np.zeros(0, np.int64)
        self.confidence = self.probabilities.max(axis=1) if len(self.y_true) else np.zeros(0)
        self.correct = self.y_pred == self.y_true

    @property
    def lengths(self) -> np.ndarray:
        """Length in whitespace-separated words (both texts of a pair)."""
        return np.array([len(ex.text.split()) + (len(ex.text_pair.split()) if ex.text_pair else 0) for ex in self.examples])

    def metrics(self, prefix: str) -> dict[str, float]:
        if self.multilabel:
            out = multilabel_metrics(self.y_true, self.y_pred, self.label_names, prefix)
            if self.decision is not None and self.decision.tuned_on:  # the same model with 0.5 thresholds, for comparison
                plain = default_decision("multilabel", len(self.label_names)).apply(self.probabilities)
                untuned = multilabel_metrics(self.y_true, plain, self.label_names, prefix)
                for key in ("macro_f1", "micro_f1", "samples_f1", "accuracy"):
                    out[f"{prefix}/untuned_{key}"] = untuned[f"{prefix}/{key}"]
        else:
            out = classification_metrics(self.y_true, self.y_pred, self.label_names, prefix)
            if self.decision is not None and self.decision.tuned_on:
                untuned = classification_metrics(self.y_true, np.asarray(self.logits).argmax(axis=1), self.label_names, prefix)
                for key in ("macro_f1", "accuracy"):
                    out[f"{prefix}/untuned_{key}"] = untuned[f"{prefix}/{key}"]
        out.update(probability_metrics(self.probabilities, self.y_true, prefix, N_BINS))
        if self.temperature != 1.0 and len(self.y_true):
            raw = sigmoid(self.logits) if self.multilabel else softmax(self.logits)
            out[f"{prefix}/ece_uncalibrated"] = expected_calibration_error(raw, self.y_true, N_BINS)
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


def _calibration_csv(bins: Any) -> str:
    return _csv(
        [["bin_low", "bin_high", "count", "accuracy", "mean_confidence"]]
        + [[f"{bins.edges[b]:.4f}", f"{bins.edges[b + 1]:.4f}", int(bins.count[b]), f"{bins.accuracy[b]:.6f}", f"{bins.confidence[b]:.6f}"]
           for b in range(len(bins.count))]
    )


def _by_length_csv(by_length: list[dict[str, float]]) -> str:
    return _csv([["min_length_words", "max_length_words", "count", "error_rate"]] + [
        [r["min_length"], r["max_length"], r["count"], f"{r['error_rate']:.6f}"] for r in by_length
    ])


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


def labels_without_examples(data: EvaluationData) -> list[str]:
    """Labels of the model that no example of ``data`` has (their F1 is 0 and still counts in macro averages)."""
    y = np.asarray(data.y_true)
    support = y.sum(axis=0) if y.ndim == 2 else np.bincount(y.astype(np.int64), minlength=len(data.label_names))
    return [n for n, s in zip(data.label_names, support) if s == 0]


def macro_note(names: Sequence[str], absent: Sequence[str], source: str | None) -> str:
    note = f"Macro averages cover all {len(names)} labels of the model."
    if absent:
        note += (f" {len(absent)} of them have no examples in {source or 'this data'} ({', '.join(absent)}): "
                 "their recall and F1 count as 0 in the macro averages, which lowers them.")
    return note


def warn_labels_without_examples(data: EvaluationData) -> None:
    absent = labels_without_examples(data)
    if absent:
        logger.warning("%s: no examples of the label(s) %s; macro averages count their F1 as 0. Give data with every label, "
                       "or drop unused labels from data.labels.", data.source or "the evaluated data", ", ".join(absent))


def write_report(
    directory: str | Path, data: EvaluationData, *, prefix: str = "test", title: str | None = None,
    training_log: Path | None = None, uncalibrated_temperature: float | None = 1.0, errors_shown: int = 200,
) -> Report:
    """Write every artifact of the report for ``data`` into ``directory`` and return its metrics."""
    from textsift.evaluation import plots  # matplotlib is imported only when a report is drawn

    out = Path(directory)
    out.parent.mkdir(parents=True, exist_ok=True)
    if data.multilabel:
        return _write_multilabel_report(out, data, prefix=prefix, title=title, training_log=training_log, errors_shown=errors_shown)
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
    files["calibration.csv"] = _calibration_csv(bins)
    raw = None
    if uncalibrated_temperature is not None and data.temperature != uncalibrated_temperature:
        raw_probs = softmax(data.logits, uncalibrated_temperature)
        raw_bins = calibration_bins(raw_probs.max(axis=1), data.correct, N_BINS)
        raw = (raw_bins, raw_bins.ece)
    images["reliability.png"] = plots.reliability_png(bins, metrics.get(f"{prefix}/ece", 0.0), raw)
    images["confidence.png"] = plots.confidence_png(data.confidence, data.correct)
    if len(names) == 2 and len(np.unique(data.y_true)) == 2:  # binary: precision-recall and ROC of the positive class
        positive = data.decision.positive if data.decision is not None and data.decision.positive is not None else 1
        threshold = data.decision.thresholds[0] if data.decision is not None else 0.5
        images["binary_curves.png"] = plots.binary_curves_png(
            data.probabilities[:, positive], (data.y_true == positive).astype(int), names[positive], threshold
        )

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
    files["error_by_length.csv"] = _by_length_csv(by_length)
    images["error_by_length.png"] = plots.error_by_length_png(by_length, "words")
    files["predictions.csv"] = _csv([["row", "true", "predicted", "confidence"]] + [
        [ex.row, names[t], names[p], f"{c:.6f}"] for ex, t, p, c in zip(data.examples, data.y_true, data.y_pred, data.confidence)
    ])

    return _finish(out, data, metrics=metrics, files=files, images=images, prefix=prefix, title=title, training_log=training_log,
                   per_label=per_label, pairs=pairs, header=header, error_rows=error_rows, errors_shown=errors_shown,
                   by_length=by_length, extra_info={})


def _write_multilabel_report(
    out: Path, data: EvaluationData, *, prefix: str, title: str | None, training_log: Path | None, errors_shown: int,
) -> Report:
    """The report of a multilabel model: per-label counts and curves instead of one confusion matrix."""
    from textsift.evaluation import plots  # matplotlib is imported only when a report is drawn

    names = data.label_names
    files: dict[str, bytes | str] = {}
    images: dict[str, bytes] = {}
    metrics = data.metrics(prefix)
    y, pred, probs = data.y_true, data.y_pred, data.probabilities
    tp = (y & pred).sum(axis=0)
    fp = ((1 - y) & pred).sum(axis=0)
    fn = (y & (1 - pred)).sum(axis=0)
    tn = len(y) - tp - fp - fn
    thresholds = data.decision.thresholds if data.decision is not None else [0.5] * len(names)
    per_label = [
        {"label": n, "threshold": float(thresholds[i]), "precision": metrics[f"{prefix}/per_label/{n}/precision"],
         "recall": metrics[f"{prefix}/per_label/{n}/recall"], "f1": metrics[f"{prefix}/per_label/{n}/f1"],
         "support": int(y[:, i].sum()), "predicted": int(pred[:, i].sum())}
        for i, n in enumerate(names)
    ]
    files["per_label.csv"] = _csv([list(per_label[0])] + [list(r.values()) for r in per_label])
    files["per_label_confusion.csv"] = _csv([["label", "tp", "fp", "fn", "tn"]] + [
        [n, int(tp[i]), int(fp[i]), int(fn[i]), int(tn[i])] for i, n in enumerate(names)
    ])
    images["per_label_confusion.png"] = plots.per_label_counts_png(names, tp, fp, fn)
    rows = [r["label"] for r in per_label] + ["macro avg", "micro avg", "weighted avg", "samples avg"]
    col = lambda key, avg: [r[key] for r in per_label] + [metrics[f"{prefix}/{a}_{avg}"] for a in ("macro", "micro", "weighted", "samples")]  # noqa: E731
    support = [r["support"] for r in per_label] + [int(y.sum())] * 4
    images["classification_report.png"] = plots.classification_report_png(
        rows, np.array(col("precision", "precision")), np.array(col("recall", "recall")), np.array(col("f1", "f1")), np.array(support)
    )
    images["pr_curves.png"] = plots.pr_curves_png(probs, y, names, thresholds)
    flat = probs.ravel()
    bins = calibration_bins(np.maximum(flat, 1 - flat), (flat >= 0.5) == (y.ravel() > 0), N_BINS)
    files["calibration.csv"] = _calibration_csv(bins)
    images["reliability.png"] = plots.reliability_png(bins, metrics.get(f"{prefix}/ece", 0.0), None)

    lengths = data.lengths
    as_set = lambda row: [names[j] for j in np.flatnonzero(row)]  # noqa: E731
    wrong = np.flatnonzero(~data.correct)
    wrong = wrong[np.argsort(-(np.abs(y[wrong] - pred[wrong]).sum(axis=1)), kind="stable")]  # the most labels wrong first
    header = ["row", "text", "true", "predicted", "missing", "extra", "length_words"]
    error_rows = []
    for i in wrong:
        missing = [names[j] for j in np.flatnonzero(y[i] & (1 - pred[i]))]
        extra = [names[j] for j in np.flatnonzero((1 - y[i]) & pred[i])]
        error_rows.append([data.examples[i].row, data.examples[i].text, "|".join(as_set(y[i])), "|".join(as_set(pred[i])),
                           "|".join(missing), "|".join(extra), int(lengths[i])])
    files["errors.csv"] = _csv([header] + error_rows)
    by_length = error_rate_by_length(lengths, data.correct)
    files["error_by_length.csv"] = _by_length_csv(by_length)
    images["error_by_length.png"] = plots.error_by_length_png(by_length, "words")
    files["predictions.csv"] = _csv([["row", "true", "predicted"]] + [
        [ex.row, "|".join(as_set(t)), "|".join(as_set(p))] for ex, t, p in zip(data.examples, y, pred)
    ])
    # label pairs most often confused: a missing label of an example next to an extra one
    confused: dict[tuple[str, str], int] = {}
    for i in wrong:
        for a in np.flatnonzero(y[i] & (1 - pred[i])):
            for b in np.flatnonzero((1 - y[i]) & pred[i]):
                confused[(names[a], names[b])] = confused.get((names[a], names[b]), 0) + 1
    pairs = [{"true": a, "predicted": b, "count": c, "share_of_true": c / max(int(y[:, names.index(a)].sum()), 1)}
             for (a, b), c in sorted(confused.items(), key=lambda kv: (-kv[1], kv[0]))]
    files["confused_pairs.csv"] = _csv([["missing", "extra", "count", "share_of_missing_label"]] + [
        [p["true"], p["predicted"], p["count"], f"{p['share_of_true']:.6f}"] for p in pairs
    ])
    return _finish(out, data, metrics=metrics, files=files, images=images, prefix=prefix, title=title, training_log=training_log,
                   per_label=per_label, pairs=pairs, header=header, error_rows=error_rows, errors_shown=errors_shown,
                   by_length=by_length, extra_info={"task": "multilabel", "thresholds": dict(zip(names, map(float, thresholds)))})


def _finish(
    out: Path, data: EvaluationData, *, metrics: dict[str, float], files: dict[str, bytes | str], images: dict[str, bytes],
    prefix: str, title: str | None, training_log: Path | None, per_label: list[dict[str, Any]], pairs: list[dict[str, Any]],
    header: list[str], error_rows: list[list[Any]], errors_shown: int, by_length: list[dict[str, float]], extra_info: dict[str, Any],
) -> Report:
    """Training curves, report.json and report.html, then every file written atomically."""
    from textsift.evaluation import plots  # matplotlib is imported only when a report is drawn

    curves = None
    if training_log is not None and training_log.is_file():
        steps, epochs = _read_training_log(training_log)
        if steps or epochs:
            images["training_curves.png"] = plots.training_curves_png(steps, epochs)
            curves = epochs
    files["metrics.json"] = json.dumps(metrics, indent=1)
    absent = labels_without_examples(data)
    info = {
        "title": title or f"Evaluation of {data.model_dir or 'a model'} on {data.source or 'data'}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model_dir": data.model_dir, "data": data.source, "data_fingerprint": data.fingerprint,
        "examples": int(len(data.y_true)), "labels": data.label_names, "prefix": prefix, "temperature": data.temperature,
        "macro_average_labels": data.label_names, "labels_without_examples": absent,
        "macro_average_note": macro_note(data.label_names, absent, data.source),
        **extra_info,
        "files": sorted([*files, *images, "report.json", "report.html"]),
    }
    files["report.json"] = json.dumps(info, indent=1)
    files["report.html"] = render_report(
        info=info, headline=summary(metrics, prefix), prefix=prefix, per_label=per_label, pairs=pairs[:20],
        errors=[dict(zip(header, r)) for r in error_rows[:errors_shown]], n_errors=len(error_rows),
        by_length=by_length, images=images, epochs=curves,
    )
    # the whole report appears at once, replacing any earlier one: never a mix of two reports
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)
        for name, content in {**images, **files}.items():
            if isinstance(content, bytes):
                atomic_write_bytes(tmp / name, content)
            else:
                atomic_write_text(tmp / name, content)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Report: %s (%d files; open report.html)", out, len(files) + len(images))
    return Report(out, metrics, sorted([*files, *images]))
