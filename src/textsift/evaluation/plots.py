"""The report's figures, drawn with matplotlib's object API on the Agg canvas: no display, no global state.

Each function returns PNG bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from textsift.evaluation.metrics import CalibrationBins, auc, average_precision, precision_recall_curve, roc_curve

DPI = 100


def _png(fig: Figure) -> bytes:
    """The figure as PNG bytes. Every figure lays itself out (constrained layout, with a margin): no
    ``bbox_inches="tight"``, which draws each figure twice (measured: half of the report's time)."""
    FigureCanvasAgg(fig)
    fig.get_layout_engine().set(w_pad=0.1, h_pad=0.1)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _matrix_size(n: int) -> float:
    return float(np.clip(1.2 + 0.45 * n, 4.0, 16.0))


def _heat(ax: Any, values: np.ndarray, text: np.ndarray, rows: Sequence[str], cols: Sequence[str], cmap: str, vmax: float | None) -> Any:
    image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), labels=list(cols), rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(rows)), labels=list(rows))
    if values.size <= 900:  # numbers stay legible up to 30 x 30
        top = vmax if vmax is not None else (values.max() or 1.0)
        small = max(5.0, 10.0 - 0.15 * max(len(rows), len(cols)))
        for (i, j), label in np.ndenumerate(text):
            ax.text(j, i, label, ha="center", va="center", fontsize=small, color="white" if values[i, j] > 0.6 * top else "black")
    return image


def confusion_matrix_png(matrix: np.ndarray, normalized: np.ndarray, label_names: Sequence[str]) -> bytes:
    n = len(label_names)
    side = _matrix_size(n)
    fig = Figure(layout="constrained", figsize=(2 * side + 1.5, side))
    for k, (values, title, fmt, vmax) in enumerate(
        ((matrix, "counts", "{:d}", None), (normalized, "row-normalized (recall)", "{:.2f}", 1.0))
    ):
        ax = fig.add_subplot(1, 2, k + 1)
        text = np.vectorize(lambda v: fmt.format(int(v) if fmt == "{:d}" else v))(values)
        image = _heat(ax, values.astype(float), text, label_names, label_names, "Blues", vmax)
        fig.colorbar(image, ax=ax)
        ax.set_xlabel("predicted label")
        ax.set_ylabel("true label")
        ax.set_title(f"Confusion matrix, {title}")
    return _png(fig)


def classification_report_png(rows: Sequence[str], precision: np.ndarray, recall: np.ndarray, f1: np.ndarray, support: np.ndarray) -> bytes:
    values = np.stack([precision, recall, f1], axis=1)
    text = np.array([[f"{v:.2f}" for v in row] for row in values])
    fig = Figure(layout="constrained", figsize=(6.5, float(np.clip(1.0 + 0.35 * len(rows), 3.0, 16.0))))
    ax = fig.add_subplot(1, 1, 1)
    labels = [f"{r} ({int(s)})" for r, s in zip(rows, support)]
    image = _heat(ax, values, text, labels, ["precision", "recall", "F1"], "RdYlGn", 1.0)
    image.set_clim(0.0, 1.0)
    fig.colorbar(image, ax=ax)
    ax.set_title("Classification report (support in brackets)")
    return _png(fig)


def reliability_png(bins: CalibrationBins, ece: float, uncalibrated: tuple[CalibrationBins, float] | None = None) -> bytes:
    fig = Figure(layout="constrained", figsize=(10, 4.5))
    ax = fig.add_subplot(1, 2, 1)
    width = np.diff(bins.edges)
    centers = bins.edges[:-1] + width / 2
    shown = bins.count > 0
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.bar(centers[shown], bins.accuracy[shown], width=width[shown], edgecolor="black", alpha=0.75, label=f"accuracy (ECE {ece:.4f})")
    ax.bar(centers[shown], bins.confidence[shown] - bins.accuracy[shown], bottom=bins.accuracy[shown], width=width[shown],
           fill=False, hatch="//", edgecolor="tab:red", label="gap to mean confidence")
    if uncalibrated is not None:
        raw, raw_ece = uncalibrated
        keep = raw.count > 0
        ax.plot(raw.confidence[keep], raw.accuracy[keep], "o-", color="tab:orange", label=f"before temperature scaling (ECE {raw_ece:.4f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability diagram")
    ax.legend(loc="upper left", fontsize=8)
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.bar(centers, bins.count, width=width, edgecolor="black", color="tab:blue", alpha=0.75)
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("confidence (max probability)")
    ax2.set_ylabel("examples")
    ax2.set_title("Examples per confidence bin")
    return _png(fig)


def confidence_png(confidence: np.ndarray, correct: np.ndarray) -> bytes:
    fig = Figure(layout="constrained", figsize=(7, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    edges = np.linspace(0.0, 1.0, 26)
    for mask, name, color in ((correct, "correct", "tab:green"), (~correct, "wrong", "tab:red")):
        values = confidence[mask]
        weights = np.full(len(values), 1.0 / max(len(values), 1))
        ax.hist(values, bins=edges, weights=weights, alpha=0.55, color=color, edgecolor="black",
                label=f"{name} ({len(values)}, median {np.median(values) if len(values) else float('nan'):.2f})")
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("share of the group")
    ax.set_title("Confidence of correct and wrong predictions")
    ax.legend(loc="upper left")
    return _png(fig)


def error_by_length_png(rows: Sequence[dict[str, float]], unit: str) -> bytes:
    fig = Figure(layout="constrained", figsize=(7.5, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    names = [f"{int(r['min_length'])}" if r["min_length"] == r["max_length"] else f"{int(r['min_length'])}–{int(r['max_length'])}" for r in rows]
    rates = [r["error_rate"] for r in rows]
    bars = ax.bar(range(len(rows)), rates, color="tab:purple", alpha=0.8, edgecolor="black")
    for bar, r in zip(bars, rows):
        ax.annotate(f"n={int(r['count'])}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(rows)), labels=names, rotation=30, ha="right")
    ax.set_xlabel(f"text length ({unit})")
    ax.set_ylabel("error rate")
    ax.set_ylim(0, max(rates + [0.05]) * 1.2)
    ax.set_title("Error rate by text length")
    return _png(fig)


def training_curves_png(steps: Sequence[dict[str, Any]], epochs: Sequence[dict[str, Any]]) -> bytes:
    fig = Figure(layout="constrained", figsize=(15, 4.2))
    ax = fig.add_subplot(1, 3, 1)
    if steps:
        ax.plot([s["step"] for s in steps], [s["train/loss"] for s in steps], color="tab:blue", alpha=0.5, label="train loss (step)")
    with_loss = [e for e in epochs if "train/loss" in e]
    ax.plot([e["step"] for e in with_loss], [e["train/loss"] for e in with_loss], "o-", color="tab:blue", label="train loss (epoch mean)")
    with_val = [e for e in epochs if "val/loss" in e]
    if with_val:
        ax.plot([e["step"] for e in with_val], [e["val/loss"] for e in with_val], "s-", color="tab:red", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Loss")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(1, 3, 2)
    if steps:
        ax.plot([s["step"] for s in steps], [s["lr"] for s in steps], color="tab:green")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title("Learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax = fig.add_subplot(1, 3, 3)
    keys = [k for k in ("val/accuracy", "val/macro_f1", "val/mcc") if any(k in e for e in epochs)]
    for key in keys:
        pts = [e for e in epochs if key in e]
        ax.plot([e["epoch"] for e in pts], [e[key] for e in pts], "o-", label=key)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Validation metrics")
    if keys:
        ax.legend(fontsize=8)
    return _png(fig)


def cv_summary_png(metric_names: Sequence[str], per_fold: np.ndarray) -> bytes:
    """Mean and standard deviation of each metric across folds, with every fold as a dot."""
    fig = Figure(layout="constrained", figsize=(max(6.0, 1.1 * len(metric_names) + 2), 4.5))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(metric_names))
    mean = per_fold.mean(axis=0)
    std = per_fold.std(axis=0, ddof=1) if len(per_fold) > 1 else np.zeros(len(metric_names))
    ax.bar(x, mean, yerr=std, capsize=5, color="tab:blue", alpha=0.6, edgecolor="black", label="mean ± std")
    for fold, row in enumerate(per_fold):
        ax.scatter(x + (fold - (len(per_fold) - 1) / 2) * 0.06, row, s=14, color="black", zorder=3,
                   label="folds" if fold == 0 else None)
    ax.set_xticks(x, labels=list(metric_names), rotation=30, ha="right")
    ax.set_ylim(min(0.0, float(per_fold.min()) - 0.05), 1.15)
    ax.set_title(f"Cross-validation, {len(per_fold)} folds")
    ax.legend(loc="upper center", ncols=2)
    return _png(fig)


def _grid(n: int) -> tuple[int, int]:
    cols = min(6, max(1, n))
    return (n + cols - 1) // cols, cols


def pr_curves_png(probabilities: np.ndarray, y_true: np.ndarray, label_names: Sequence[str], thresholds: Sequence[float] | None) -> bytes:
    """One precision-recall curve per label (small multiples), with its average precision and the chosen threshold."""
    rows, cols = _grid(len(label_names))
    fig = Figure(layout="constrained", figsize=(2.6 * cols, 2.3 * rows))
    for j, name in enumerate(label_names):
        ax = fig.add_subplot(rows, cols, j + 1)
        y = y_true[:, j]
        if y.any():
            precision, recall, cut = precision_recall_curve(y, probabilities[:, j])
            ax.plot(recall, precision, color="tab:blue")
            ap = average_precision(y, probabilities[:, j])
            if thresholds is not None and len(cut):
                k = min(int(np.searchsorted(cut, thresholds[j])), len(cut) - 1)
                ax.plot(recall[k], precision[k], "o", color="tab:red", markersize=4)
            ax.set_title(f"{name} (AP {ap:.2f}, n={int(y.sum())})", fontsize=8)
        else:
            ax.set_title(f"{name} (no positives)", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=6)
    fig.suptitle("Precision-recall per label (red: the decision threshold)")
    return _png(fig)


def per_label_counts_png(label_names: Sequence[str], tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> bytes:
    """Per-label confusion counts: true positives, false negatives (missed) and false positives (extra)."""
    fig = Figure(layout="constrained", figsize=(8, float(np.clip(1.0 + 0.32 * len(label_names), 3.0, 16.0))))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(label_names))
    ax.barh(y, tp, color="tab:green", label="true positives")
    ax.barh(y, fn, left=tp, color="tab:orange", label="false negatives (missed)")
    ax.barh(y, fp, left=tp + fn, color="tab:red", alpha=0.7, label="false positives (extra)")
    ax.set_yticks(y, labels=list(label_names))
    ax.invert_yaxis()
    ax.set_xlabel("examples")
    ax.set_title("Per-label confusion counts")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def binary_curves_png(scores: np.ndarray, positive: np.ndarray, positive_name: str, threshold: float) -> bytes:
    """Precision-recall and ROC curves of the positive class, with the decision threshold marked."""
    fig = Figure(layout="constrained", figsize=(10, 4.3))
    ax = fig.add_subplot(1, 2, 1)
    precision, recall, cut = precision_recall_curve(positive, scores)
    ax.plot(recall, precision, color="tab:blue", label=f"AP {average_precision(positive, scores):.3f}")
    if len(cut):
        k = min(int(np.searchsorted(cut, threshold)), len(cut) - 1)
        ax.plot(recall[k], precision[k], "o", color="tab:red", label=f"threshold {threshold:.2f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"Precision-recall ('{positive_name}' positive)")
    ax.legend(loc="lower left")
    ax2 = fig.add_subplot(1, 2, 2)
    fpr, tpr, roc_cut = roc_curve(positive, scores)
    ax2.plot(fpr, tpr, color="tab:purple", label=f"AUC {auc(fpr, tpr):.3f}")
    ax2.plot([0, 1], [0, 1], "--", color="gray")
    k = int(np.argmin(np.abs(roc_cut - threshold)))
    ax2.plot(fpr[k], tpr[k], "o", color="tab:red", label=f"threshold {threshold:.2f}")
    ax2.set_xlabel("false positive rate")
    ax2.set_ylabel("true positive rate")
    ax2.set_title("ROC")
    ax2.legend(loc="lower right")
    return _png(fig)
