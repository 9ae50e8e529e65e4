"""Stratified K-fold cross-validation: one full training run (and report) per fold, and an aggregate.

::

    OUTPUT/
      config.yaml        the resolved config every fold trains with
      folds.csv          row of the training file -> fold that holds it out
      fold-1/ ... fold-K/   ordinary run directories (model/, report/, metrics.json), fold k held out as test
      cv_summary.csv     metric x fold, with mean and standard deviation
      cv_summary.json    the same, as JSON
      cv_summary.png     mean +- std per headline metric, each fold as a dot
      cv_report.html     the table and the plot on one self-contained page, linking each fold's report

A fold whose run finished is not trained again when the command is run again with ``--resume``; an
interrupted fold continues from its last checkpoint.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textsift.config import Config
from textsift.data.checks import run_cheap_checks
from textsift.data.example import Dataset
from textsift.data.labels import LabelSet
from textsift.data.loading import Splits, read_for, stratified_split
from textsift.errors import ConfigError
from textsift.evaluation.metrics import summary
from textsift.training.callbacks import Callback
from textsift.util import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

PLOTTED = ("accuracy", "macro_f1", "weighted_f1", "mcc", "macro_precision", "macro_recall")


@dataclass
class CVResult:
    directory: Path | None
    per_fold: list[dict[str, float]]
    aggregate: dict[str, dict[str, Any]]


def aggregate(per_fold: Sequence[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Mean and sample standard deviation (ddof=1; 0 for one fold) of every metric all folds have."""
    if not per_fold:
        return {}
    keys = [k for k in per_fold[0] if all(k in m for m in per_fold)]
    out = {}
    for key in keys:
        values = np.array([m[key] for m in per_fold], np.float64)
        out[key] = {
            "mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()), "max": float(values.max()), "per_fold": values.tolist(),
        }
    return out


def fold_assignment(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold index (0..K-1) of every example: stratified, shuffled with ``seed``."""
    counts = np.bincount(labels)
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}.")
    if folds > len(labels):
        raise ConfigError(f"--folds {folds} is more than the {len(labels)} training examples.")
    rare = int(counts[counts > 0].min())
    if rare < folds:
        logger.warning("The rarest label has %d examples, fewer than %d folds: some folds will not contain it.", rare, folds)
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), np.int64)
    start = 0
    for label in np.flatnonzero(counts):  # each class shuffled, then dealt to the folds in turn, continuing where the
        members = np.flatnonzero(labels == label)  # previous class stopped: fold sizes differ by at most one
        rng.shuffle(members)
        assignment[members] = (start + np.arange(len(members))) % folds
        start = (start + len(members)) % folds
    return assignment


def stratification_labels(y: np.ndarray) -> np.ndarray:
    """One class per example to stratify by: the label, or for multilabel the example's rarest label."""
    if y.ndim == 1:
        return y
    freq = y.sum(axis=0)
    return np.array([int(np.argmin(np.where(row > 0, freq, np.inf))) if row.any() else y.shape[1] for row in y])


def cross_validate(
    config: Config, folds: int, output: str | Path | None = None, *, resume: bool = False, callbacks: Sequence[Callback] = (),
) -> CVResult:
    """Train and evaluate ``folds`` times, each time holding out one stratified fold of the training data as test."""
    from textsift.training.run import _prepare_run_dir, train

    pool = read_for(config, config.data.train)
    labels = LabelSet.infer(pool, config.data.labels, multilabel=config.task == "multilabel")
    assignment = fold_assignment(stratification_labels(labels.encode(pool)), folds, config.seed)
    fixed_validation = read_for(config, config.data.validation) if config.data.validation is not None else None
    if config.data.checks:  # the checks a training run makes (leakage into validation, missing labels, truncation), once
        run_cheap_checks(pool, fixed_validation, None, labels, getattr(config.tokenizer, "max_length", None))
    if config.data.test is not None:
        logger.info("Cross-validation tests on the held-out folds; data.test (%s) is not used.", config.data.test)
    out = Path(output) if output is not None else None
    if out is not None:
        # the same rule as a run directory: files there need --resume, and --resume needs the same config
        _prepare_run_dir(out, config, resume=resume and (out / "config.yaml").is_file())
        atomic_write_text(out / "folds.csv", "row,fold\n" + "".join(f"{ex.row},{k + 1}\n" for ex, k in zip(pool.examples, assignment)))

    per_fold: list[dict[str, float]] = []
    for k in range(folds):
        fold_dir = out / f"fold-{k + 1}" if out is not None else None
        if fold_dir is not None and (fold_dir / "metrics.json").is_file() and (fold_dir / "model").is_dir():
            logger.info("Fold %d/%d: finished earlier, reading its metrics.", k + 1, folds)
            per_fold.append(summary(json.loads((fold_dir / "metrics.json").read_text(encoding="utf-8")), "test"))
            continue
        train_part = Dataset(f"{pool.name} (folds other than {k + 1})", [ex for ex, f in zip(pool.examples, assignment) if f != k])
        test_part = Dataset(f"{pool.name} (fold {k + 1} of {folds})", [ex for ex, f in zip(pool.examples, assignment) if f == k])
        validation = fixed_validation
        if validation is None and config.data.validation_split > 0:
            train_part, validation = stratified_split(train_part, config.data.validation_split, config.seed)
        logger.info("Fold %d/%d: train %d, validation %d, test %d", k + 1, folds, len(train_part),
                    len(validation) if validation is not None else 0, len(test_part))
        splits = Splits(train_part, validation, test_part, labels)
        again = fold_dir is not None and (fold_dir / "checkpoint.safetensors").is_file()
        if fold_dir is not None and fold_dir.exists() and not again:
            import shutil

            shutil.rmtree(fold_dir)  # a fold that died before its first checkpoint starts over
        result = train(config, fold_dir, resume=again, callbacks=callbacks, splits=splits)
        per_fold.append(summary(result.metrics, "test"))
    agg = aggregate(per_fold)
    if out is not None:
        write_summary(out, per_fold, agg)
    return CVResult(out, per_fold, agg)


def write_summary(out: Path, per_fold: list[dict[str, float]], agg: dict[str, dict[str, Any]]) -> None:
    folds = len(per_fold)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["metric", *(f"fold_{k + 1}" for k in range(folds)), "mean", "std"])
    for key, a in agg.items():
        writer.writerow([key, *(f"{v:.6f}" for v in a["per_fold"]), f"{a['mean']:.6f}", f"{a['std']:.6f}"])
    atomic_write_text(out / "cv_summary.csv", buf.getvalue())
    atomic_write_text(out / "cv_summary.json", json.dumps({"folds": folds, "std": "sample (ddof=1)", "metrics": agg}, indent=1))
    from textsift.evaluation import plots

    shown = [m for m in PLOTTED if f"test/{m}" in agg]
    png = plots.cv_summary_png(shown, np.array([[agg[f"test/{m}"]["per_fold"][k] for m in shown] for k in range(folds)]))
    atomic_write_bytes(out / "cv_summary.png", png)
    rows = "".join(
        f"<tr><td>{html.escape(k.removeprefix('test/'))}</td>" + "".join(f'<td class="num">{v:.4f}</td>' for v in a["per_fold"])
        + f'<td class="num"><b>{a["mean"]:.4f}</b></td><td class="num">{a["std"]:.4f}</td></tr>'
        for k, a in agg.items() if not k.endswith("/examples")
    )
    links = " · ".join(f'<a href="fold-{k + 1}/report/report.html">fold {k + 1}</a>' for k in range(folds))
    head = "".join(f"<th>fold {k + 1}</th>" for k in range(folds))
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        f"<title>Cross-validation, {folds} folds</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem}"
        "table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:.25rem .6rem}th{background:#f4f4f4}"
        "td.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}</style></head><body>"
        f"<h1>Cross-validation, {folds} stratified folds</h1><p>Fold reports: {links}</p>"
        f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="cross-validation summary">'
        f"<table><thead><tr><th>metric</th>{head}<th>mean</th><th>std (ddof=1)</th></tr></thead><tbody>{rows}</tbody></table>"
        "</body></html>\n"
    )
    atomic_write_text(out / "cv_report.html", page)
    logger.info("Cross-validation summary: %s", out / "cv_summary.csv")
