"""The evaluation report, calibration, cross-validation aggregation and the paired bootstrap, against hand-computed values."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from textsift.data.example import Example
from textsift.errors import DataError
from textsift.evaluation.calibration import Calibration, fit_temperature, nll
from textsift.evaluation.compare import SystemPredictions, compare, interval, paired_bootstrap, weighted_scores
from textsift.evaluation.metrics import (
    calibration_bins, confusion_matrix, error_rate_by_length, expected_calibration_error, row_normalize, softmax,
    top_confused_pairs,
)
from textsift.evaluation.report import EvaluationData, write_report
from textsift.training.cv import aggregate, fold_assignment

NAMES = ["a", "b", "c"]
# 7 examples: true a a b b c c c, predicted a b b b c a c
Y_TRUE = np.array([0, 0, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 0, 2])
TEXTS = ["one", "one two", "one two three", "x y", "p q r s", "long text of six words", "z"]


def fixture_data(temperature: float = 1.0) -> EvaluationData:
    logits = np.full((7, 3), -2.0)
    logits[np.arange(7), Y_PRED] = 2.0
    logits[1, 0] = 1.5  # the a -> b error is a close call
    examples = [Example(text=t, label=NAMES[y], row=i + 2) for i, (t, y) in enumerate(zip(TEXTS, Y_TRUE))]
    return EvaluationData(examples, Y_TRUE, logits, NAMES, temperature=temperature, source="fixture.jsonl", fingerprint="abc")


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(path.open(encoding="utf-8")))


def test_confusion_matrix_cells_and_row_normalization():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    norm = row_normalize(cm)
    assert norm[0].tolist() == [0.5, 0.5, 0.0] and norm[1].tolist() == [0.0, 1.0, 0.0]
    assert norm[2] == pytest.approx([1 / 3, 0.0, 2 / 3])
    # a label with no examples keeps a zero row instead of dividing by zero
    assert row_normalize(confusion_matrix(np.array([0]), np.array([1]), 3))[2].tolist() == [0.0, 0.0, 0.0]


def test_ece_on_a_known_case():
    # bins of width 0.1: 0.9 lands in (0.8, 0.9] with accuracy 1/2, 0.6 in (0.5, 0.6] with accuracy 2/2
    conf = np.array([0.9, 0.9, 0.6, 0.6])
    correct = np.array([1, 0, 1, 1])
    bins = calibration_bins(conf, correct, n_bins=10)
    assert bins.count[8] == 2 and bins.count[5] == 2 and bins.count.sum() == 4
    assert bins.accuracy[8] == 0.5 and bins.confidence[8] == pytest.approx(0.9)
    # ECE = 2/4 * |0.5 - 0.9| + 2/4 * |1.0 - 0.6| = 0.4
    assert bins.ece == pytest.approx(0.4)
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    assert expected_calibration_error(probs, np.array([0, 1, 0, 1]), n_bins=10) == pytest.approx(0.4)
    # certain and always right: perfectly calibrated
    assert expected_calibration_error(np.eye(3), np.arange(3)) == 0.0


def test_confused_pairs_and_error_by_length():
    pairs = top_confused_pairs(np.array([[5, 3, 1], [0, 4, 0], [2, 0, 6]]), NAMES)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [("a", "b", 3), ("c", "a", 2), ("a", "c", 1)]
    assert pairs[0]["share_of_true"] == pytest.approx(3 / 9)
    lengths = np.array([1, 1, 2, 2, 10, 10, 10, 10])
    correct = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    rows = error_rate_by_length(lengths, correct, n_bins=2)
    assert [(r["min_length"], r["max_length"], r["count"]) for r in rows] == [(1, 2, 4), (10, 10, 4)]
    assert [r["error_rate"] for r in rows] == [0.25, 0.75]


def test_report_files_and_their_numbers(tmp_path):
    report = write_report(tmp_path / "report", fixture_data(), prefix="test")
    out = report.directory
    expected = {
        "metrics.json", "per_label.csv", "confusion_matrix.csv", "confusion_matrix_normalized.csv", "confusion_matrix.png",
        "classification_report.png", "calibration.csv", "reliability.png", "confidence.png", "errors.csv", "confused_pairs.csv",
        "error_by_length.csv", "error_by_length.png", "predictions.csv", "report.json", "report.html",
    }
    assert expected <= {p.name for p in out.iterdir()}
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_csv(out / "confusion_matrix.csv") == [
        ["true \\ predicted", "a", "b", "c"], ["a", "1", "1", "0"], ["b", "0", "2", "0"], ["c", "1", "0", "2"],
    ]
    assert [float(v) for v in read_csv(out / "confusion_matrix_normalized.csv")[3][1:]] == pytest.approx([1 / 3, 0, 2 / 3], abs=1e-6)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test/accuracy"] == pytest.approx(5 / 7)
    per_label = {r["label"]: r for r in csv.DictReader((out / "per_label.csv").open())}
    assert float(per_label["b"]["precision"]) == pytest.approx(2 / 3) and per_label["b"]["predicted"] == "3"
    assert per_label["c"]["support"] == "3" and float(per_label["c"]["recall"]) == pytest.approx(2 / 3)
    errors = list(csv.DictReader((out / "errors.csv").open()))
    assert len(errors) == 2
    # most confident mistake first: c -> a (2 vs -2 logits) before the close a -> b call
    assert [(e["row"], e["true"], e["predicted"]) for e in errors] == [("7", "c", "a"), ("3", "a", "b")]
    assert errors[0]["text"] == "long text of six words" and errors[0]["length_words"] == "5"
    assert float(errors[1]["confidence"]) == pytest.approx(softmax(np.array([[1.5, 2.0, -2.0]]))[0, 1], abs=1e-6)
    assert read_csv(out / "confused_pairs.csv")[1:] == [["a", "b", "1", "0.500000"], ["c", "a", "1", "0.333333"]]
    assert len(read_csv(out / "predictions.csv")) == 8
    conf = softmax(fixture_data().logits).max(axis=1)
    ece = calibration_bins(conf, Y_TRUE == Y_PRED, 15).ece
    assert metrics["test/ece"] == pytest.approx(ece)
    assert sum(int(r[2]) for r in read_csv(out / "calibration.csv")[1:]) == 7
    info = json.loads((out / "report.json").read_text())
    assert info["data_fingerprint"] == "abc" and info["examples"] == 7 and set(info["files"]) >= expected
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "long text of six words" in page


def test_report_escapes_text_in_html(tmp_path):
    data = fixture_data()
    data.examples[5] = Example(text="<script>alert(1)</script>", label="c", row=7)
    page = write_report(tmp_path, data).directory.joinpath("report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_temperature_scaling_recovers_the_temperature_and_keeps_labels():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(20_000, 4)) * 1.5
    probs = softmax(true_logits)
    y = np.array([rng.choice(4, p=p) for p in probs])
    overconfident = 3.0 * true_logits  # a model whose logits are 3x too large
    cal = fit_temperature(overconfident, y)
    assert cal.temperature == pytest.approx(3.0, rel=0.05)
    assert cal.nll_after < cal.nll_before and cal.ece_after < cal.ece_before
    assert nll(overconfident, y, cal.temperature) == pytest.approx(cal.nll_after)
    assert (softmax(overconfident, cal.temperature).argmax(1) == overconfident.argmax(1)).all()


def test_calibration_file_round_trip_and_damage(tmp_path):
    cal = fit_temperature(np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]), np.array([0, 1, 1]))
    cal.save(tmp_path)
    assert Calibration.load(tmp_path) == cal
    (tmp_path / "calibration.json").write_text('{"temperature": -1}')
    from textsift.errors import ModelDirError

    with pytest.raises(ModelDirError, match="calibration.json is damaged"):
        Calibration.load(tmp_path)


def test_report_with_temperature_records_uncalibrated_ece(tmp_path):
    data = fixture_data(temperature=2.0)
    metrics = write_report(tmp_path, data).metrics
    assert metrics["test/ece_uncalibrated"] == pytest.approx(expected_calibration_error(softmax(data.logits), Y_TRUE))
    assert metrics["test/ece"] == pytest.approx(expected_calibration_error(softmax(data.logits, 2.0), Y_TRUE))
    assert metrics["test/accuracy"] == pytest.approx(5 / 7)  # labels do not move


def test_fold_aggregation_by_hand():
    agg = aggregate([{"acc": 0.8, "f1": 0.5}, {"acc": 0.9, "f1": 0.7}, {"acc": 0.7, "f1": 0.6, "only_here": 1.0}])
    assert set(agg) == {"acc", "f1"}  # a metric missing from one fold is not averaged
    assert agg["acc"]["mean"] == pytest.approx(0.8) and agg["acc"]["std"] == pytest.approx(0.1)  # sample std
    assert agg["f1"]["mean"] == pytest.approx(0.6) and agg["f1"]["std"] == pytest.approx(0.1)
    assert agg["acc"]["per_fold"] == [0.8, 0.9, 0.7] and agg["acc"]["min"] == 0.7
    assert aggregate([{"acc": 0.5}])["acc"]["std"] == 0.0


def test_fold_assignment_is_stratified_and_covers_every_example():
    labels = np.array([0] * 30 + [1] * 15 + [2] * 6)
    folds = fold_assignment(labels, 3, seed=1)
    assert sorted(np.unique(folds).tolist()) == [0, 1, 2]
    for k in range(3):
        assert np.bincount(labels[folds == k], minlength=3).tolist() == [10, 5, 2]
    assert (fold_assignment(labels, 3, seed=1) == folds).all()
    from textsift.errors import ConfigError

    with pytest.raises(ConfigError, match="--folds must be at least 2"):
        fold_assignment(labels, 1, seed=0)


def test_bootstrap_of_identical_systems_is_exactly_zero():
    y = np.array([0, 1, 2, 1, 0, 2, 2, 1])
    p = np.array([0, 1, 1, 1, 0, 2, 0, 1])
    boot = paired_bootstrap(y, [p, p.copy()], 3, resamples=500)
    for metric in ("accuracy", "macro_f1"):
        ci = interval(boot[metric][:, 1] - boot[metric][:, 0])
        assert ci["low"] == ci["high"] == 0.0 and ci["p_value"] == 1.0


def test_bootstrap_interval_matches_the_normal_approximation():
    # B is right on 100 of 1000 examples where A is wrong, and they agree elsewhere: the difference in
    # accuracy is a mean of 0/1 values with p = 0.1, so the 95% interval is 0.1 +- 1.96 * sqrt(0.09 / 1000)
    n, m = 1000, 100
    y = np.zeros(n, np.int64)
    y[::2] = 1
    a = y.copy()
    a[:m] = 1 - y[:m]
    b = y.copy()
    boot = paired_bootstrap(y, [a, b], 2, resamples=20_000, seed=3)
    diffs = boot["accuracy"][:, 1] - boot["accuracy"][:, 0]
    ci = interval(diffs)
    half = 1.96 * np.sqrt(0.1 * 0.9 / n)
    assert diffs.mean() == pytest.approx(0.1, abs=1e-3)
    assert ci["low"] == pytest.approx(0.1 - half, abs=0.003) and ci["high"] == pytest.approx(0.1 + half, abs=0.003)
    assert ci["p_value"] < 1e-3
    # accuracy on the original sample is one of the bootstrap's centres
    assert boot["accuracy"][:, 0].mean() == pytest.approx(0.9, abs=2e-3)


def test_resample_scores_match_sklearn_with_sample_weights():
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 60)
    preds = [np.where(rng.random(60) < 0.7, y, rng.integers(0, 4, 60)) for _ in range(2)]
    weights = rng.multinomial(60, np.full(60, 1 / 60), size=5).astype(float)
    acc, f1 = weighted_scores(weights, y, preds, 4)
    for r in range(5):
        for s, p in enumerate(preds):
            assert acc[r, s] == pytest.approx(accuracy_score(y, p, sample_weight=weights[r]))
            expected = f1_score(y, p, sample_weight=weights[r], labels=[0, 1, 2, 3], average="macro", zero_division=0)
            assert f1[r, s] == pytest.approx(expected)


def test_compare_refuses_different_test_sets():
    a = SystemPredictions("A", [1, 2], ["x", "y"], ["x", "x"], ["x", "y"], "f1", "a.jsonl")
    b = SystemPredictions("B", [1, 2, 3], ["x", "y", "y"], ["x", "y", "y"], ["x", "y"], "f2", "b.jsonl")
    with pytest.raises(DataError, match="not evaluated on the same test set: data fingerprints differ"):
        compare([a, b])
    c = SystemPredictions("C", [1, 2], ["x", "y"], ["y", "y"], ["x", "y"], "f1", "a.jsonl")
    result = compare([a, c], resamples=200)
    assert result["metrics"]["A"]["accuracy"] == 0.5 and result["metrics"]["C"]["accuracy"] == 0.5
    assert result["differences"][0]["accuracy"]["difference"] == 0.0
