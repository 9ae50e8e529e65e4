"""Compare models evaluated on the same test set: side-by-side metrics and a paired bootstrap.

The paired bootstrap resamples test examples with replacement (the same resample for every model),
recomputes accuracy and macro-F1 of each model on it, and takes percentiles of the difference to the
first model (the baseline). Pairing removes the variance the models share, so the interval is much
narrower than comparing two independent intervals.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textsift.errors import DataError, ModelDirError
from textsift.evaluation.metrics import classification_metrics, summary
from textsift.util import atomic_write_text

HEADLINE = ("accuracy", "macro_f1", "weighted_f1", "mcc", "macro_precision", "macro_recall")
BOOTSTRAPPED = ("accuracy", "macro_f1")


@dataclass
class SystemPredictions:
    name: str
    rows: list[int]
    y_true: list[str]
    y_pred: list[str]
    labels: list[str]
    fingerprint: str | None
    source: str


def find_report(path: Path) -> Path:
    """A report directory, the report of a run directory, or the report beside a model directory in its run."""
    for candidate in (path, path / "report", path.parent / "report"):
        if (candidate / "predictions.csv").is_file() and (candidate / "report.json").is_file():
            return candidate
    raise ModelDirError(
        f"'{path}' holds no evaluation report with predictions (looked in {path}, {path / 'report'}, {path.parent / 'report'}). "
        "Train with test data, run `textsift evaluate MODEL DATA --report DIR`, or pass --data FILE to predict afresh."
    )


def load_report_predictions(path: Path) -> SystemPredictions:
    report = find_report(Path(path))
    info = json.loads((report / "report.json").read_text(encoding="utf-8"))
    if info.get("task") == "multilabel":
        raise DataError(f"{report}: a multilabel report; compare works on single-label models (accuracy and macro-F1 of one label each).")
    rows, y_true, y_pred = [], [], []
    with (report / "predictions.csv").open(encoding="utf-8", newline="") as f:
        for record in csv.DictReader(f):
            rows.append(int(record["row"]))
            y_true.append(record["true"])
            y_pred.append(record["predicted"])
    return SystemPredictions(str(path), rows, y_true, y_pred, list(info["labels"]), info.get("data_fingerprint"), str(info.get("data")))


def predict_afresh(path: Path, data: Path) -> SystemPredictions:
    from textsift import load
    from textsift.data.loading import read_for
    from textsift.evaluation.evaluate import evaluation_data

    predictor = load(path)
    if predictor.multilabel:
        raise DataError(f"{path}: a multilabel model; compare works on single-label models (accuracy and macro-F1 of one label each).")
    dataset = read_for(predictor.config, str(Path(data).resolve()))
    ev = evaluation_data(predictor, dataset)
    names = predictor.label_names
    return SystemPredictions(
        str(path), [ex.row for ex in dataset.examples], [names[i] for i in ev.y_true], [names[i] for i in ev.y_pred],
        names, ev.fingerprint, dataset.name,
    )


def check_same_test_set(systems: Sequence[SystemPredictions]) -> None:
    first = systems[0]
    for other in systems[1:]:
        problem = None
        if first.fingerprint and other.fingerprint and first.fingerprint != other.fingerprint:
            problem = f"data fingerprints differ ({first.fingerprint} vs {other.fingerprint})"
        elif len(first.y_true) != len(other.y_true):
            problem = f"{len(first.y_true)} vs {len(other.y_true)} examples"
        elif first.rows != other.rows or first.y_true != other.y_true:
            problem = "the examples or their true labels differ"
        if problem:
            raise DataError(
                f"'{first.name}' ({first.source}) and '{other.name}' ({other.source}) were not evaluated on the same test set: "
                f"{problem}. Evaluate both on one file, or pass --data FILE to predict with each on it."
            )


def _indicators(y: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(y), k), np.float64)
    out[np.arange(len(y)), y] = 1.0
    return out


def weighted_scores(
    weights: np.ndarray, y_true: np.ndarray, predictions: Sequence[np.ndarray], num_labels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and macro-F1 of every system under each row of example weights: two (rows, systems) arrays."""
    truth = _indicators(y_true, num_labels)
    total = weights.sum(axis=1, keepdims=True)
    correct = np.stack([(p == y_true).astype(np.float64) for p in predictions], axis=1)  # (n, S)
    true_count = weights @ truth
    f1 = []
    for p in predictions:
        pred = _indicators(p, num_labels)
        tp, denom = weights @ (truth * pred), true_count + weights @ pred
        f1.append(np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0).mean(axis=1))
    return weights @ correct / total, np.stack(f1, axis=1)


def paired_bootstrap(
    y_true: np.ndarray, predictions: Sequence[np.ndarray], num_labels: int, *, resamples: int = 10_000,
    seed: int = 0, chunk: int = 500,
) -> dict[str, np.ndarray]:
    """Bootstrap values of accuracy and macro-F1 for each system: arrays of shape (resamples, systems).

    Macro-F1 averages over all ``num_labels`` labels (a label absent from a resample and never predicted
    scores 0), the same definition as :func:`classification_metrics`.
    """
    n = len(y_true)
    if n == 0:
        raise DataError("The paired bootstrap needs at least one test example.")
    rng = np.random.default_rng(seed)
    acc, f1 = [], []
    done = 0
    while done < resamples:
        b = min(chunk, resamples - done)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)  # (b, n): times each example is drawn
        a, f = weighted_scores(weights, y_true, predictions, num_labels)
        acc.append(a)
        f1.append(f)
        done += b
    return {"accuracy": np.concatenate(acc), "macro_f1": np.concatenate(f1)}


def interval(differences: np.ndarray, confidence: float = 0.95) -> dict[str, float]:
    """Percentile interval of bootstrap differences, and an approximate two-sided p-value for 'no difference'."""
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(differences, [alpha, 1.0 - alpha])
    p = min(1.0, 2 * min(float(np.mean(differences <= 0)), float(np.mean(differences >= 0))))
    return {"low": float(low), "high": float(high), "p_value": p}


def compare(
    systems: Sequence[SystemPredictions], *, resamples: int = 10_000, confidence: float = 0.95, seed: int = 0,
) -> dict[str, Any]:
    """Side-by-side metrics, and for each system after the first its difference to the first with intervals."""
    if len(systems) < 2:
        raise DataError("compare needs at least two models or runs.")
    check_same_test_set(systems)
    labels = list(dict.fromkeys([label for s in systems for label in s.labels]))
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({v for s in systems for v in s.y_true + s.y_pred if v not in index})
    if unknown:
        raise DataError(f"Labels {unknown} appear in the predictions but in no model's label set.")
    y_true = np.array([index[v] for v in systems[0].y_true])
    preds = [np.array([index[v] for v in s.y_pred]) for s in systems]
    table = {s.name: {k.removeprefix("test/"): v for k, v in summary(classification_metrics(y_true, p, labels, "test"), "test").items()
                      if k.removeprefix("test/") in HEADLINE} for s, p in zip(systems, preds)}
    boot = paired_bootstrap(y_true, preds, len(labels), resamples=resamples, seed=seed)
    differences = []
    base = systems[0].name
    for j, s in enumerate(systems[1:], start=1):
        entry: dict[str, Any] = {"system": s.name, "baseline": base}
        for metric in BOOTSTRAPPED:
            diffs = boot[metric][:, j] - boot[metric][:, 0]
            entry[metric] = {"difference": table[s.name][metric] - table[base][metric], **interval(diffs, confidence)}
        differences.append(entry)
    return {
        "test_set": {"source": systems[0].source, "fingerprint": systems[0].fingerprint, "examples": len(y_true)},
        "bootstrap": {"resamples": resamples, "confidence": confidence, "seed": seed, "paired": True},
        "metrics": table, "differences": differences,
    }


def write_comparison(out: Path, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare.json", json.dumps(result, indent=1))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = list(result["metrics"])
    writer.writerow(["metric", *names])
    for metric in HEADLINE:
        writer.writerow([metric, *(f"{result['metrics'][n][metric]:.6f}" for n in names)])
    atomic_write_text(out / "compare_metrics.csv", buf.getvalue())
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["system", "baseline", "metric", "difference", "ci_low", "ci_high", "p_value"])
    for d in result["differences"]:
        for metric in BOOTSTRAPPED:
            m = d[metric]
            writer.writerow([d["system"], d["baseline"], metric, f"{m['difference']:.6f}", f"{m['low']:.6f}", f"{m['high']:.6f}", f"{m['p_value']:.4f}"])
    atomic_write_text(out / "compare_bootstrap.csv", buf.getvalue())
