"""Classification metrics as a pure function returning flat, stable keys.

Keys: ``{prefix}/accuracy``, ``{prefix}/macro_f1`` (and precision/recall, for macro, micro and
weighted averages), ``{prefix}/mcc``, ``{prefix}/per_label/{label}/{precision,recall,f1,support}``.

Computed with numpy from per-label counts, with scikit-learn's definitions (``zero_division=0``): the tests
hold every function here to scikit-learn's result. Importing ``sklearn.metrics`` costs about 1.2 s (it pulls
in scipy.stats and pandas), which every command that reports a metric would pay before doing anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's zero_division=0)."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _prf(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 from true positives, predicted counts and true counts (arrays of one shape)."""
    return _ratio(tp, predicted), _ratio(tp, support), _ratio(2 * tp, predicted + support)


def _averages(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray, prefix: str) -> dict[str, float]:
    """Macro, micro and weighted precision / recall / F1 of per-label counts."""
    p, r, f = _prf(tp, predicted, support)
    total = support.sum()
    out: dict[str, float] = {}
    micro = _prf(tp.sum(), predicted.sum(), total)
    for average, values in (("macro", [v.mean() if len(v) else 0.0 for v in (p, r, f)]),
                            ("micro", micro),
                            ("weighted", [float(v @ support / total) if total else 0.0 for v in (p, r, f)])):
        for name, value in zip(("precision", "recall", "f1"), values):
            out[f"{prefix}/{average}_{name}"] = float(value)
    return out


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, label_names: Sequence[str], prefix: str = "test"
) -> dict[str, float]:
    n = len(label_names)
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    matrix = confusion_matrix(y_true, y_pred, n)
    tp, predicted, support = np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1)
    out: dict[str, float] = {f"{prefix}/accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0}
    out.update(_averages(tp, predicted, support, prefix))
    out[f"{prefix}/mcc"] = matthews_corrcoef(matrix)
    out.update(_per_label(*_prf(tp, predicted, support), support, label_names, prefix))
    return out


def matthews_corrcoef(matrix: np.ndarray) -> float:
    """The multiclass Matthews correlation of a confusion matrix (Gorodkin's R_K); 0 where undefined."""
    matrix = np.asarray(matrix, np.float64)
    t, p = matrix.sum(axis=1), matrix.sum(axis=0)
    s, c = matrix.sum(), np.trace(matrix)
    den = np.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float((c * s - t @ p) / den) if den > 0 else 0.0


def _per_label(p: np.ndarray, r: np.ndarray, f: np.ndarray, s: np.ndarray, label_names: Sequence[str], prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for i, name in enumerate(label_names):
        key = f"{prefix}/per_label/{name}"
        out[f"{key}/precision"] = float(p[i])
        out[f"{key}/recall"] = float(r[i])
        out[f"{key}/f1"] = float(f[i])
        out[f"{key}/support"] = float(s[i])
    return out


def summary(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """The headline metrics (no per-label keys)."""
    return {k: v for k, v in metrics.items() if k.startswith(prefix + "/") and "/per_label/" not in k}


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> np.ndarray:
    """Counts: row = true label, column = predicted label."""
    flat = np.asarray(y_true, np.int64) * num_labels + np.asarray(y_pred, np.int64)
    return np.bincount(flat, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def row_normalize(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the recall view); rows of a label absent from the data stay 0."""
    sums = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, sums, out=np.zeros(matrix.shape, np.float64), where=sums > 0)


@dataclass
class CalibrationBins:
    """Equal-width confidence bins ``((m-1)/M, m/M]`` (the first also holds 0), as in Guo et al. (2017)."""

    edges: np.ndarray  # M + 1 edges from 0 to 1
    count: np.ndarray  # examples per bin
    accuracy: np.ndarray  # accuracy per bin (0 where empty)
    confidence: np.ndarray  # mean max-probability per bin (0 where empty)

    @property
    def ece(self) -> float:
        n = self.count.sum()
        return float(np.sum(self.count / n * np.abs(self.accuracy - self.confidence))) if n else 0.0


def calibration_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> CalibrationBins:
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, np.float64)
    # round first so that 0.9 * 10 lands in the bin (0.8, 0.9], not (0.9, 1.0], whatever the float error
    index = np.clip(np.ceil(np.round(confidence * n_bins, 9)).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    safe = np.maximum(count, 1)
    accuracy = np.bincount(index, weights=correct, minlength=n_bins) / safe
    mean_conf = np.bincount(index, weights=confidence, minlength=n_bins) / safe
    return CalibrationBins(np.linspace(0.0, 1.0, n_bins + 1), count, accuracy, mean_conf)


def expected_calibration_error(probabilities: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-label confidence: sum over bins of (bin share) * |accuracy - mean confidence|."""
    if len(y_true) == 0:
        return 0.0
    if np.asarray(y_true).ndim == 2:  # multilabel: every (example, label) decision at 0.5 is one binary prediction
        p = np.asarray(probabilities, np.float64).ravel()
        conf = np.maximum(p, 1.0 - p)
        correct = (p >= 0.5) == (np.asarray(y_true).ravel() > 0)
        return calibration_bins(conf, correct, n_bins).ece
    conf = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(y_true)
    return calibration_bins(conf, correct, n_bins).ece


def probability_metrics(probabilities: np.ndarray, y_true: np.ndarray, prefix: str = "test", n_bins: int = 15) -> dict[str, float]:
    """``{prefix}/ece``, ``{prefix}/nll`` (mean negative log-likelihood) and ``{prefix}/brier`` (multiclass)."""
    if len(y_true) == 0:
        return {}
    if np.asarray(y_true).ndim == 2:
        y = np.asarray(y_true, np.float64)
        p = np.clip(np.asarray(probabilities, np.float64), 1e-12, 1 - 1e-12)
        return {
            f"{prefix}/ece": expected_calibration_error(probabilities, y_true, n_bins),
            f"{prefix}/nll": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
            f"{prefix}/brier": float(np.mean((p - y) ** 2)),
        }
    y_true = np.asarray(y_true, np.int64)
    p_true = probabilities[np.arange(len(y_true)), y_true]
    onehot = np.zeros_like(probabilities, dtype=np.float64)
    onehot[np.arange(len(y_true)), y_true] = 1.0
    return {
        f"{prefix}/ece": expected_calibration_error(probabilities, y_true, n_bins),
        f"{prefix}/nll": float(-np.mean(np.log(np.clip(p_true, 1e-12, 1.0)))),
        f"{prefix}/brier": float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1))),
    }


def top_confused_pairs(matrix: np.ndarray, label_names: Sequence[str], k: int | None = None) -> list[dict[str, float | str]]:
    """Off-diagonal cells, most frequent first: true label, predicted label, count and share of the true label."""
    rows = matrix.sum(axis=1)
    pairs = [
        {"true": label_names[i], "predicted": label_names[j], "count": int(matrix[i, j]),
         "share_of_true": float(matrix[i, j] / rows[i])}
        for i in range(len(label_names)) for j in range(len(label_names)) if i != j and matrix[i, j] > 0
    ]
    pairs.sort(key=lambda p: (-p["count"], p["true"], p["predicted"]))  # type: ignore[operator]
    return pairs if k is None else pairs[:k]


def error_rate_by_length(lengths: np.ndarray, correct: np.ndarray, n_bins: int = 8) -> list[dict[str, float]]:
    """Error rate in length bins of about equal size (upper bounds at quantiles, ties kept together), shortest first."""
    lengths = np.asarray(lengths)
    if len(lengths) == 0:
        return []
    uppers = np.unique(np.quantile(lengths, np.linspace(0, 1, n_bins + 1)[1:], method="lower"))
    uppers[-1] = lengths.max()
    index = np.searchsorted(uppers, lengths, side="left")
    out = []
    for b in range(len(uppers)):
        mask = index == b
        if not mask.any():
            continue
        lo, hi = int(lengths[mask].min()), int(lengths[mask].max())
        out.append({"min_length": lo, "max_length": hi, "count": int(mask.sum()),
                    "error_rate": float(1.0 - np.mean(correct[mask]))})
    return out


def multilabel_metrics(y_true: np.ndarray, y_pred: np.ndarray, label_names: Sequence[str], prefix: str = "test") -> dict[str, float]:
    """Metrics of label sets (0/1 matrices, examples x labels), flat keys like :func:`classification_metrics`.

    ``accuracy`` is subset accuracy (the whole set right); ``hamming_loss`` the share of wrong label
    decisions; ``samples_*`` average over examples; ``label_cardinality`` the mean number of true labels.
    """
    y_true = np.asarray(y_true).astype(np.int64).reshape(-1, len(label_names))
    y_pred = np.asarray(y_pred).astype(np.int64).reshape(-1, len(label_names))
    both = y_true & y_pred
    tp, predicted, support = both.sum(axis=0), y_pred.sum(axis=0), y_true.sum(axis=0)
    out: dict[str, float] = {f"{prefix}/accuracy": float(np.mean(np.all(y_true == y_pred, axis=1))) if len(y_true) else 0.0}
    out.update(_averages(tp, predicted, support, prefix))
    # samples: the same measures per example (its label set against the true one), averaged over examples
    for name, values in zip(("precision", "recall", "f1"), _prf(both.sum(axis=1), y_pred.sum(axis=1), y_true.sum(axis=1))):
        out[f"{prefix}/samples_{name}"] = float(values.mean()) if len(values) else 0.0
    out[f"{prefix}/hamming_loss"] = float(np.mean(y_true != y_pred)) if len(y_true) else 0.0
    out[f"{prefix}/label_cardinality"] = float(y_true.sum(axis=1).mean()) if len(y_true) else 0.0
    out[f"{prefix}/predicted_cardinality"] = float(y_pred.sum(axis=1).mean()) if len(y_true) else 0.0
    out.update(_per_label(*_prf(tp, predicted, support), support, label_names, prefix))
    return out


def sigmoid(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64) / temperature))


# -- ranking curves (scikit-learn's precision_recall_curve, roc_curve, average_precision_score, auc) ---------------
def _counts_at_thresholds(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positives when predicting positive at or above each distinct score, highest first."""
    order = np.argsort(np.asarray(scores), kind="mergesort")[::-1]
    scores = np.asarray(scores)[order]
    y = np.asarray(y_true)[order].astype(np.float64)
    last = np.r_[np.where(np.diff(scores))[0], y.size - 1]  # the last index of each distinct score
    tps = np.cumsum(y)[last]
    return 1 + last - tps, tps, scores[last]


def precision_recall_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall (decreasing, ending at (1, 0)) and the thresholds, as scikit-learn returns them."""
    fps, tps, thresholds = _counts_at_thresholds(y_true, scores)
    precision = _ratio(tps, tps + fps)
    recall = tps / tps[-1] if tps[-1] else np.ones_like(tps)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Sum over thresholds of (recall step) x precision: scikit-learn's average_precision_score."""
    precision, recall, _ = precision_recall_curve(y_true, scores)
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates from (0, 0), collinear points dropped, and the thresholds (the first inf)."""
    fps, tps, thresholds = _counts_at_thresholds(y_true, scores)
    if fps.size > 2:
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full(fps.shape, np.nan)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.full(tps.shape, np.nan)
    return fpr, tpr, np.r_[np.inf, thresholds.astype(np.float64)]


def auc(x: np.ndarray, y: np.ndarray) -> float:
    """Area under a curve by the trapezoidal rule (x monotonic, either direction)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    area = float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))
    return -area if np.all(np.diff(x) <= 0) else area
