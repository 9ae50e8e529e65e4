"""Decision thresholds: how probabilities become labels, tuned on validation data.

* multilabel: a threshold per label (or one for all) on the sigmoid probabilities, tuned to maximise
  the main metric (macro-F1: each label's F1 on its own, which maximises their mean exactly; micro-F1
  and others: coordinate ascent over labels); optional ``at_least_one`` (an example with no label above
  its threshold gets its most probable one) and ``top_k`` (keep at most k labels).
* binary single-label: a threshold on the positive class's probability.

Saved as ``thresholds.json`` in the model directory; evaluate and predict use it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textsift.util import atomic_write_text, load_record

logger = logging.getLogger(__name__)

FILE = "thresholds.json"
GRID = np.round(np.linspace(0.02, 0.98, 49), 4)


@dataclass(frozen=True)
class Decision:
    kind: str  # "multilabel" or "binary"
    thresholds: list[float]  # one per label (multilabel), or [t] for the positive class (binary)
    positive: int | None = None  # binary: index of the positive label
    at_least_one: bool = False
    top_k: int | None = None
    metric: str = ""
    tuned_on: str = ""
    score_before: float | None = None
    score_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """multilabel: a 0/1 matrix of chosen labels; binary: the chosen label index per example."""
        p = np.asarray(probabilities)
        if self.kind == "binary":
            assert self.positive is not None
            negative = 1 - self.positive
            return np.where(p[:, self.positive] >= self.thresholds[0], self.positive, negative)
        chosen = p >= np.asarray(self.thresholds)[None, :]
        if self.top_k is not None and p.shape[1] > self.top_k:
            rank = np.argsort(np.argsort(-p, axis=1, kind="stable"), axis=1, kind="stable")
            chosen &= rank < self.top_k
        if self.at_least_one and len(p):
            empty = ~chosen.any(axis=1)
            chosen[np.flatnonzero(empty), p[empty].argmax(axis=1)] = True
        return chosen.astype(np.int64)

    def save(self, model_dir: Path) -> None:
        atomic_write_text(Path(model_dir) / FILE, json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, model_dir: Path) -> "Decision | None":
        return load_record(cls, Path(model_dir) / FILE, "delete it to use 0.5 thresholds, or train again")


def default_decision(kind: str, num_labels: int, default: float = 0.5, at_least_one: bool = False, top_k: int | None = None,
                     positive: int | None = None) -> Decision:
    return Decision(kind, [default] * (num_labels if kind == "multilabel" else 1), positive, at_least_one, top_k)


def _score(y_true: np.ndarray, y_pred: np.ndarray, metric: str) -> float:
    from textsift.evaluation.metrics import classification_metrics, multilabel_metrics

    if y_true.ndim == 2:
        return multilabel_metrics(y_true, y_pred, [str(i) for i in range(y_true.shape[1])], "m")[f"m/{metric}"]
    return classification_metrics(y_true, y_pred, ["0", "1"], "m")[f"m/{metric}"]


def _f1_per_threshold(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """F1 of one label at every grid threshold (vectorised)."""
    pred = p[:, None] >= GRID[None, :]
    tp = (pred & (y[:, None] > 0)).sum(axis=0)
    fp = (pred & (y[:, None] == 0)).sum(axis=0)
    fn = ((~pred) & (y[:, None] > 0)).sum(axis=0)
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros(len(GRID)), where=denom > 0)


def tune_multilabel(
    probabilities: np.ndarray, y_true: np.ndarray, *, metric: str = "macro_f1", per_label: bool = True,
    default: float = 0.5, at_least_one: bool = False, top_k: int | None = None, tuned_on: str = "validation data",
) -> Decision:
    p, y = np.asarray(probabilities), np.asarray(y_true)
    k = p.shape[1]
    base = default_decision("multilabel", k, default, at_least_one, top_k)
    before = _score(y, base.apply(p), metric)
    # one threshold for all labels first: the starting point (and the answer when not per label)
    scores = [_score(y, Decision("multilabel", [t] * k, None, at_least_one, top_k).apply(p), metric) for t in GRID]
    thresholds = np.full(k, float(GRID[int(np.argmax(scores))]))
    if per_label:
        if metric == "macro_f1" and not at_least_one and top_k is None:
            for j in range(k):  # macro-F1 is the mean of per-label F1s: each label on its own is exact
                if y[:, j].any():
                    thresholds[j] = float(GRID[int(np.argmax(_f1_per_threshold(p[:, j], y[:, j])))])
        else:
            best = _score(y, Decision("multilabel", thresholds.tolist(), None, at_least_one, top_k).apply(p), metric)
            for _ in range(2):  # coordinate ascent
                for j in range(k):
                    for t in GRID:
                        trial = thresholds.copy()
                        trial[j] = t
                        s = _score(y, Decision("multilabel", trial.tolist(), None, at_least_one, top_k).apply(p), metric)
                        if s > best + 1e-12:
                            best, thresholds = s, trial
    decision = Decision("multilabel", [float(t) for t in thresholds], None, at_least_one, top_k, metric, tuned_on, before)
    after = _score(y, decision.apply(p), metric)
    if after < before:  # never worse than the default on the data it was tuned on
        decision, after = base, before
    decision = Decision(decision.kind, decision.thresholds, None, at_least_one, top_k, metric, tuned_on, before, after)
    logger.info("Thresholds tuned on %s (%s): %s %.4f -> %.4f", tuned_on, "per label" if per_label else "global", metric, before, after)
    return decision


def tune_binary(
    probabilities: np.ndarray, y_true: np.ndarray, *, positive: int = 1, metric: str = "macro_f1", tuned_on: str = "validation data",
) -> Decision:
    p, y = np.asarray(probabilities), np.asarray(y_true)
    base = Decision("binary", [0.5], positive)
    before = _score(y, base.apply(p), metric)
    scores = [_score(y, Decision("binary", [float(t)], positive).apply(p), metric) for t in GRID]
    t = float(GRID[int(np.argmax(scores))])
    after = max(scores)
    if after < before:
        t, after = 0.5, before
    logger.info("Positive-class threshold tuned on %s: %.2f, %s %.4f -> %.4f", tuned_on, t, metric, before, after)
    return Decision("binary", [t], positive, metric=metric, tuned_on=tuned_on, score_before=before, score_after=after)
