"""Classification metrics as a pure function returning flat, stable keys.

Keys: ``{prefix}/accuracy``, ``{prefix}/macro_f1`` (and precision/recall, for macro, micro and
weighted averages), ``{prefix}/mcc``, ``{prefix}/per_label/{label}/{precision,recall,f1,support}``.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
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
