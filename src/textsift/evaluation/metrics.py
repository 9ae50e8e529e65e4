"""Classification metrics as a pure function returning flat, stable keys.

Keys: ``{prefix}/accuracy``, ``{prefix}/macro_f1`` (and precision/recall, for macro, micro and
weighted averages), ``{prefix}/mcc``, ``{prefix}/per_label/{label}/{precision,recall,f1,support}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, matthews_corrcoef, precision_recall_fscore_support


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, label_names: Sequence[str], prefix: str = "test"
) -> dict[str, float]:
    labels = list(range(len(label_names)))
    out: dict[str, float] = {f"{prefix}/accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)
        out[f"{prefix}/{average}_precision"] = float(p)
        out[f"{prefix}/{average}_recall"] = float(r)
        out[f"{prefix}/{average}_f1"] = float(f)
    out[f"{prefix}/mcc"] = float(matthews_corrcoef(y_true, y_pred)) if len(y_true) else 0.0
    out.update(_per_label(*precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0),
                          label_names, prefix))
    return out


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
    from sklearn.metrics import hamming_loss

    y_true = np.asarray(y_true).astype(np.int64)
    y_pred = np.asarray(y_pred).astype(np.int64)
    out: dict[str, float] = {f"{prefix}/accuracy": float(np.mean(np.all(y_true == y_pred, axis=1))) if len(y_true) else 0.0}
    for average in ("macro", "micro", "weighted", "samples"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
        out[f"{prefix}/{average}_precision"] = float(p)
        out[f"{prefix}/{average}_recall"] = float(r)
        out[f"{prefix}/{average}_f1"] = float(f)
    out[f"{prefix}/hamming_loss"] = float(hamming_loss(y_true, y_pred)) if len(y_true) else 0.0
    out[f"{prefix}/label_cardinality"] = float(y_true.sum(axis=1).mean()) if len(y_true) else 0.0
    out[f"{prefix}/predicted_cardinality"] = float(y_pred.sum(axis=1).mean()) if len(y_true) else 0.0
    out.update(_per_label(*precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0), label_names, prefix))
    return out


def sigmoid(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64) / temperature))
