"""The reporting commands end to end: train's report, evaluate --report/--calibrate, cv and compare."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, assert_only_safe_files, write_jsonl
from test_cli import one_error_line, run

REPORT_FILES = {
    "metrics.json", "per_label.csv", "confusion_matrix.csv", "confusion_matrix_normalized.csv", "confusion_matrix.png",
    "classification_report.png", "calibration.csv", "reliability.png", "confidence.png", "errors.csv", "confused_pairs.csv",
    "error_by_length.csv", "error_by_length.png", "predictions.csv", "report.json", "report.html", "training_curves.png",
}
# noisier data than TINY: some test examples are misclassified, so errors and calibration have content
FLIP = {"pos": "neg", "neg": "pos"}
NOISY = TINY + [("happy but awful", "neg"), ("sad yet lovely", "pos"), ("great terrible movie", "neg"), ("dull superb story", "pos")]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("reports")
    return {
        "train": write_jsonl(tmp / "train.jsonl", [{"text": t, "label": l} for t, l in NOISY]),
        # four labels flipped: the test set has errors to analyse whatever the model learns
        "test": write_jsonl(tmp / "test.jsonl", [{"text": t, "label": FLIP[l] if i < 4 else l} for i, (t, l) in enumerate(NOISY)]),
        "other": write_jsonl(tmp / "other.jsonl", [{"text": t, "label": l} for t, l in TINY[:6]]),
        "tmp": tmp,
    }


def train(data: dict[str, Path], out: Path, *extra: str) -> Path:
    result = run("-q", "train", "--train", str(data["train"]), "--validation", str(data["train"]), "--test", str(data["test"]),
                 "--output", str(out), "--set", "trainer.epochs=8", "--set", "trainer.early_stopping=null",
                 "--set", "trainer.batch_size=4", *extra)
    assert result.exit_code == 0, result.output + result.stderr
    return out


@pytest.fixture(scope="module")
def runs(data) -> tuple[Path, Path]:
    a = train(data, data["tmp"] / "run-a")
    b = train(data, data["tmp"] / "run-b", "--set", "model=cnn", "--set", "trainer.calibration=temperature")
    return a, b


def test_train_writes_the_report_with_training_curves(runs):
    run_a, _ = runs
    assert REPORT_FILES <= {p.name for p in (run_a / "report").iterdir()}
    metrics = json.loads((run_a / "metrics.json").read_text())
    assert json.loads((run_a / "report" / "metrics.json").read_text()) == {k: v for k, v in metrics.items() if k.startswith("test/")}
    assert {"test/ece", "test/nll", "test/brier"} <= set(metrics)
    predictions = list(csv.DictReader((run_a / "report" / "predictions.csv").open()))
    assert len(predictions) == len(NOISY)
    accuracy = np.mean([p["true"] == p["predicted"] for p in predictions])
    assert accuracy == pytest.approx(metrics["test/accuracy"])
    errors = list(csv.DictReader((run_a / "report" / "errors.csv").open()))
    assert len(errors) == sum(p["true"] != p["predicted"] for p in predictions) >= 4


def test_training_with_temperature_scaling_saves_it(runs):
    _, run_b = runs
    calibration = json.loads((run_b / "model" / "calibration.json").read_text())
    metrics = json.loads((run_b / "metrics.json").read_text())
    assert metrics["val/temperature"] == pytest.approx(calibration["temperature"])
    assert calibration["nll_after"] <= calibration["nll_before"]
    assert json.loads((run_b / "report" / "report.json").read_text())["temperature"] == pytest.approx(calibration["temperature"])
    temperature = calibration["temperature"]
    assert temperature > 0 and temperature != pytest.approx(1.0, abs=1e-3)  # fitted, not left at 1
    assert calibration["nll_after"] < calibration["nll_before"]
    assert "test/ece_uncalibrated" in metrics and metrics["test/ece"] != metrics["test/ece_uncalibrated"]
    # predict divides the logits by the saved temperature
    from textsift import load
    from textsift.data.example import Example
    from textsift.evaluation.metrics import softmax

    model = load(run_b)
    texts = [t for t, _ in NOISY]
    logits = model.logits([Example(text=t) for t in texts])
    probabilities = model.predict(texts).probabilities
    np.testing.assert_allclose(probabilities, softmax(logits, temperature), rtol=1e-5, atol=1e-6)
    assert not np.allclose(probabilities, softmax(logits, 1.0), rtol=1e-3, atol=1e-4)
    assert_only_safe_files(run_b)


def test_evaluate_report_and_calibrate(runs, data, tmp_path):
    import shutil

    from textsift import load

    model = tmp_path / "model"
    shutil.copytree(runs[0] / "model", model)
    before = load(model).predict([t for t, _ in NOISY])
    out = tmp_path / "report"
    result = run("-q", "evaluate", str(model), str(data["test"]), "--report", str(out), "--calibrate",
                 "--calibration-data", str(data["train"]))
    assert result.exit_code == 0, result.output + result.stderr
    assert REPORT_FILES - {"training_curves.png"} <= {p.name for p in out.iterdir()}
    temperature = json.loads((model / "calibration.json").read_text())["temperature"]
    assert temperature > 0 and temperature != 1.0
    after = load(model).predict([t for t, _ in NOISY])
    assert after.labels == before.labels  # temperature scaling never changes a label
    assert not np.allclose(after.probabilities, before.probabilities)
    metrics = json.loads((out / "metrics.json").read_text())
    assert "test/ece_uncalibrated" in metrics and json.loads((out / "report.json").read_text())["temperature"] == temperature


def test_calibrate_needs_validation_data_and_flags_go_together(runs, data, tmp_path):
    line = one_error_line(run("evaluate", str(runs[0]), str(data["test"]), "--calibration-data", str(data["train"])))
    assert "--calibration-data is the data --calibrate fits on" in line
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{train: {data['train']}, validation_split: 0}}\ntrainer: {{main_metric: train/loss, "
                      "main_metric_mode: min, early_stopping: null, calibration: temperature}\n")
    line = one_error_line(run("train", str(config), "--output", str(tmp_path / "x")))
    assert "trainer.calibration 'temperature' is fitted on validation data, but there is none" in line


def test_cross_validation_folds_summary_and_resume(data, tmp_path):
    config = tmp_path / "cv.yaml"
    config.write_text(f"data: {{train: {data['train']}, validation_split: 0.25}}\n"
                      "trainer: {epochs: 4, batch_size: 4, early_stopping: null}\n")
    out = tmp_path / "cv"
    result = run("-q", "cv", str(config), "--folds", "4", "--output", str(out))
    assert result.exit_code == 0, result.output + result.stderr
    folds = list(csv.DictReader((out / "folds.csv").open()))
    assert sorted(int(f["row"]) for f in folds) == list(range(1, len(NOISY) + 1))  # every example held out once
    per_fold = [json.loads((out / f"fold-{k}" / "metrics.json").read_text()) for k in range(1, 5)]
    assert sum(m["test/examples"] for m in per_fold) == len(NOISY)
    for k in range(1, 5):
        assert (out / f"fold-{k}" / "report" / "report.html").is_file()
    summary = {r["metric"]: r for r in csv.DictReader((out / "cv_summary.csv").open())}
    accs = [m["test/accuracy"] for m in per_fold]
    assert float(summary["test/accuracy"]["mean"]) == pytest.approx(np.mean(accs), abs=1e-6)
    assert float(summary["test/accuracy"]["std"]) == pytest.approx(np.std(accs, ddof=1), abs=1e-6)
    assert (out / "cv_summary.png").read_bytes()[:4] == b"\x89PNG" and (out / "cv_report.html").is_file()

    assert "--resume" in one_error_line(run("cv", str(config), "--folds", "4", "--output", str(out)))
    import shutil

    shutil.rmtree(out / "fold-2")
    result = run("cv", str(config), "--folds", "4", "--output", str(out), "--resume")
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stderr.count("finished earlier") == 3  # only the deleted fold trains again
    again = json.loads((out / "fold-2" / "metrics.json").read_text())
    assert again["test/accuracy"] == per_fold[1]["test/accuracy"]  # same seed, same fold: same result


def test_compare_runs_and_refuse_different_test_sets(runs, data, tmp_path, monkeypatch):
    from textsift.evaluation import compare

    drawn: list[dict] = []

    def paired_bootstrap(*args, **kwargs):  # records how many resamples were drawn
        values = real_bootstrap(*args, **kwargs)
        drawn.append({metric: v.shape for metric, v in values.items()})
        return values

    real_bootstrap = compare.paired_bootstrap
    monkeypatch.setattr(compare, "paired_bootstrap", paired_bootstrap)
    run_a, run_b = runs
    out = tmp_path / "cmp"
    result = run("compare", str(run_a), str(run_b / "model"), "--output", str(out))
    assert result.exit_code == 0, result.output + result.stderr
    # the default: 10,000 resamples of the test set, the same for both models
    assert drawn == [{"accuracy": (10_000, 2), "macro_f1": (10_000, 2)}]
    saved = json.loads((out / "compare.json").read_text())
    assert saved["bootstrap"]["resamples"] == 10_000 and saved["bootstrap"]["paired"] is True
    assert "10000 resamples" in " ".join(result.stdout.split())
    acc_a = json.loads((run_a / "metrics.json").read_text())["test/accuracy"]
    acc_b = json.loads((run_b / "metrics.json").read_text())["test/accuracy"]
    diff = saved["differences"][0]["accuracy"]
    assert diff["difference"] == pytest.approx(acc_b - acc_a)
    assert diff["low"] <= diff["difference"] <= diff["high"]
    assert (out / "compare_metrics.csv").is_file() and (out / "compare_bootstrap.csv").is_file()
    # predicting afresh on the test file gives the same table as the saved reports
    fresh = run("compare", str(run_a), str(run_b), "--data", str(data["test"]), "--output", str(tmp_path / "fresh"), "--resamples", "2000")
    assert fresh.exit_code == 0, fresh.output + fresh.stderr
    fresh_metrics = json.loads((tmp_path / "fresh" / "compare.json").read_text())["metrics"]
    assert list(fresh_metrics.values()) == list(saved["metrics"].values())
    other = tmp_path / "other-report"
    assert run("-q", "evaluate", str(run_a), str(data["other"]), "--report", str(other)).exit_code == 0
    line = one_error_line(run("compare", str(run_a), str(other)))
    assert "were not evaluated on the same test set" in line
