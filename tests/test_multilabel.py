"""Multi-label tasks and decision thresholds: reading, task checks, metrics, tuning, predict, report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import textsift
from textsift.config import resolve
from textsift.data.example import Dataset, Example
from textsift.data.loading import fit_task, read_source
from textsift.data.readers import AutoReader
from textsift.errors import ConfigError, DataError
from textsift.evaluation.metrics import multilabel_metrics
from textsift.evaluation.thresholds import Decision, tune_binary, tune_multilabel

from conftest import TINY, assert_only_safe_files
from test_cli import one_error_line, run
from test_models_contract import multilabel_rows


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_readers_take_lists_and_delimited_strings(tmp_path):
    jsonl = write(tmp_path / "a.jsonl", [{"text": "x", "label": ["joy", "love"]}, {"text": "y", "label": ["anger"]}])
    ds = read_source(str(jsonl), AutoReader(), task="multilabel")
    assert [ex.labels for ex in ds.examples] == [("joy", "love"), ("anger",)]
    (tmp_path / "b.csv").write_text('text,label\n"x","joy,love"\n"y",anger\n"z","sadness; fear"\n')
    ds = read_source(str(tmp_path / "b.csv"), AutoReader(), task="multilabel")
    assert [ex.labels for ex in ds.examples] == [("joy", "love"), ("anger",), ("sadness; fear",)]
    ds = read_source(str(tmp_path / "b.csv"), AutoReader(), task="multilabel", label_delimiter=";")
    assert ds.examples[2].labels == ("sadness", "fear")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["x", "y"], "label": [["a", "b"], ["b"]]}), tmp_path / "c.parquet")
    assert [ex.labels for ex in read_source(str(tmp_path / "c.parquet"), AutoReader(), task="multilabel").examples] == [("a", "b"), ("b",)]


def test_task_mismatches_are_caught_before_training(tmp_path):
    lists = write(tmp_path / "lists.jsonl", [{"text": "x", "label": "joy"}, {"text": "y", "label": ["joy", "love"]}])
    with pytest.raises(DataError, match=r"lists.jsonl, row 2: the label is a list \['joy', 'love'\]: this is multi-label data. Set task: multilabel"):
        read_source(str(lists), AutoReader())
    joined = Dataset("d.csv", [Example("a", "joy"), Example("b", "love"), Example("c", "joy,love", row=3)])
    with pytest.raises(DataError, match=r"row 3: the label 'joy,love' joins labels that occur on their own"):
        fit_task(joined, "single_label")
    single = Dataset("s.jsonl", [Example("a", "joy"), Example("b", "love")])
    with pytest.raises(DataError, match="task is multilabel, but every example has exactly one label"):
        fit_task(single, "multilabel")
    # the same through the command line: one line, before anything trains
    line = one_error_line(run("train", "--train", str(lists), "--output", str(tmp_path / "run")))
    assert "this is multi-label data. Set task: multilabel" in line
    assert not (tmp_path / "run" / "model").exists()


def test_multilabel_config_defaults_and_loss_checks(tmp_path):
    data = write(tmp_path / "d.jsonl", multilabel_rows())
    config = resolve({"task": "multilabel", "data": {"train": str(data)}})
    assert config.trainer.loss.type == "bce" and config.trainer.main_metric == "val/macro_f1"
    with pytest.raises(ConfigError, match="a multilabel task needs 'bce'"):
        resolve({"task": "multilabel", "data": {"train": str(data)}, "trainer": {"loss": "cross_entropy"}})
    with pytest.raises(ConfigError, match="'bce' is for multilabel tasks"):
        resolve({"data": {"train": str(data)}, "trainer": {"loss": "bce"}})
    loss = resolve({"task": "multilabel", "data": {"train": str(data)}, "trainer": {"loss": {"type": "bce", "pos_weight": "balanced"}}})
    fn = loss.trainer.loss.build(np.array([20.0, 50.0, 80.0, 2.0]), 100)
    assert fn.pos_weight.tolist() == pytest.approx([4.0, 1.0, 0.25, 10.0])  # (n - pos) / pos, capped at 10


def test_multilabel_metrics_by_hand():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    p = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1], [0, 0, 0]])
    m = multilabel_metrics(y, p, ["a", "b", "c"], "t")
    assert m["t/accuracy"] == 0.25  # only example 2 has exactly the right set
    assert m["t/hamming_loss"] == pytest.approx(3 / 12)
    # micro: tp 4, fp 1, fn 2 -> P 4/5, R 4/6
    assert m["t/micro_precision"] == pytest.approx(0.8) and m["t/micro_recall"] == pytest.approx(4 / 6)
    # per label: a: tp2 -> F1 1; b: tp2 -> 1; c: tp0 fp1 fn2 -> 0
    assert m["t/per_label/c/f1"] == 0.0 and m["t/macro_f1"] == pytest.approx(2 / 3)
    # samples F1: 2/3, 1, 0.8, 0 (an example with no predicted label scores 0)
    assert m["t/samples_f1"] == pytest.approx((2 / 3 + 1 + 0.8 + 0) / 4)
    assert m["t/label_cardinality"] == pytest.approx(6 / 4) and m["t/predicted_cardinality"] == pytest.approx(5 / 4)


def test_threshold_tuning_finds_the_separating_thresholds():
    rng = np.random.default_rng(0)
    y = (rng.random((400, 3)) < [0.3, 0.1, 0.5]).astype(int)
    # label 0 positives score 0.3-0.4 and negatives 0.0-0.2: 0.5 finds none, the tuned threshold all of them
    p = np.where(y == 1, rng.uniform(0.3, 0.4, y.shape), rng.uniform(0.0, 0.2, y.shape))
    decision = tune_multilabel(p, y, metric="macro_f1")
    assert decision.score_before == 0.0 and decision.score_after == 1.0
    assert all(0.2 <= t <= 0.3 for t in decision.thresholds)
    assert (decision.apply(p) == y).all()
    micro = tune_multilabel(p, y, metric="micro_f1", per_label=True)
    assert micro.score_after == 1.0
    glob = tune_multilabel(p, y, metric="macro_f1", per_label=False)
    assert len(set(glob.thresholds)) == 1 and glob.score_after == 1.0


def test_at_least_one_and_top_k():
    p = np.array([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]])
    plain = Decision("multilabel", [0.5, 0.5, 0.5])
    assert plain.apply(p).tolist() == [[0, 0, 0], [1, 1, 1]]
    assert Decision("multilabel", [0.5] * 3, at_least_one=True).apply(p).tolist() == [[0, 0, 1], [1, 1, 1]]
    assert Decision("multilabel", [0.5] * 3, top_k=2).apply(p).tolist() == [[0, 0, 0], [1, 1, 0]]


def test_binary_threshold_tuning():
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.2).astype(int)
    pos = np.where(y == 1, rng.uniform(0.25, 0.45, 500), rng.uniform(0.0, 0.2, 500))
    probs = np.stack([1 - pos, pos], axis=1)
    decision = tune_binary(probs, y, positive=1, metric="macro_f1")
    assert 0.2 <= decision.thresholds[0] <= 0.25 and decision.score_after == 1.0 > decision.score_before
    assert (decision.apply(probs) == y).all()


def rare_label_rows() -> list[dict]:
    """TINY with label sets: the sentiment, plus 'arts' (4 of 16) when the text names a film or music."""
    return [{"text": t, "label": [l] + (["arts"] if {"film", "music"} & set(t.split()) else [])} for t, l in TINY]


@pytest.fixture(scope="module")
def ml_run(tmp_path_factory):
    """A multilabel run whose tuned thresholds matter: the regularised linear model ranks every label right, but
    pulls the rare label's probabilities towards its prior (0.25), so 0.5 misses every 'arts' and the tuned
    threshold none."""
    tmp = tmp_path_factory.mktemp("ml")
    data = write(tmp / "d.jsonl", rare_label_rows())
    result = run("-q", "train", "--train", str(data), "--validation", str(data), "--test", str(data), "--output", str(tmp / "run"),
                 "--set", "task=multilabel", "--set", "model.type=linear", "--set", "model.C=0.3")
    assert result.exit_code == 0, result.output + result.stderr
    return tmp / "run", data


def _texts(data: Path) -> list[str]:
    return [json.loads(line)["text"] for line in data.read_text().splitlines()]


def _decisions(model_dir: Path, data: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Label names, the true label sets, and the decisions of the model's tuned thresholds and of 0.5 (0/1 matrices)."""
    model = textsift.load(model_dir)
    names = model.label_names
    probabilities = model.predict(_texts(data)).probabilities
    truth = np.array([[name in json.loads(line)["label"] for name in names] for line in data.read_text().splitlines()], int)
    thresholds = json.loads((model_dir / "model" / "thresholds.json").read_text())["thresholds"]
    return names, truth, (probabilities >= np.array(thresholds)).astype(int), (probabilities >= 0.5).astype(int)


def _sets(names: list[str], decisions: np.ndarray) -> list[list[str]]:
    return [[name for name, chosen in zip(names, row) if chosen] for row in decisions]


def test_multilabel_run_saves_thresholds_and_writes_its_report(ml_run):
    run_dir, data = ml_run
    thresholds = json.loads((run_dir / "model" / "thresholds.json").read_text())
    assert thresholds["kind"] == "multilabel" and len(thresholds["thresholds"]) == 3 and thresholds["metric"] == "macro_f1"
    # the tuned thresholds change decisions, for the better: every label set right, where 0.5 is not
    _, truth, tuned, half = _decisions(run_dir, data)
    assert (tuned == truth).all() and (half != truth).any()
    assert thresholds["score_after"] == 1.0 > thresholds["score_before"]
    assert_only_safe_files(run_dir)
    report = run_dir / "report"
    for name in ("per_label.csv", "per_label_confusion.csv", "per_label_confusion.png", "pr_curves.png", "errors.csv",
                 "reliability.png", "report.html", "classification_report.png"):
        assert (report / name).is_file(), name
    counts = {r["label"]: r for r in csv.DictReader((report / "per_label_confusion.csv").open())}
    truth_rows = rare_label_rows()
    assert int(counts["arts"]["tp"]) + int(counts["arts"]["fn"]) == sum("arts" in r["label"] for r in truth_rows)
    assert int(counts["arts"]["fp"]) == int(counts["arts"]["fn"]) == 0  # the report counts the tuned decisions
    assert sum(int(v) for k, v in counts["pos"].items() if k != "label") == 16
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/accuracy"] == 1.0 and metrics["test/untuned_accuracy"] == pytest.approx((half == truth).all(axis=1).mean())


def test_evaluate_and_predict_apply_thresholds_json(ml_run, tmp_path):
    import shutil

    run_dir, data = ml_run
    names, truth, tuned, half = _decisions(run_dir, data)
    model = tmp_path / "run"
    shutil.copytree(run_dir, model)

    def evaluated() -> dict:
        result = run("-q", "evaluate", str(model), str(data), "--json")
        assert result.exit_code == 0, result.output + result.stderr
        return json.loads(result.stdout)

    def predicted() -> list[list[str]]:
        result = run("predict", str(model), str(data))
        assert result.exit_code == 0, result.output + result.stderr
        return [json.loads(line)["labels"] for line in result.stdout.splitlines() if line.strip()]

    metrics = evaluated()
    assert metrics["test/accuracy"] == 1.0 and metrics["test/hamming_loss"] == 0.0
    half_accuracy = (half == truth).all(axis=1).mean()
    assert half_accuracy < 1.0 and metrics["test/untuned_accuracy"] == pytest.approx(half_accuracy)
    assert predicted() == _sets(names, tuned) == _sets(names, truth)
    assert textsift.load(model).predict(_texts(data)).labels == _sets(names, tuned)
    # the decisions come from thresholds.json: with 0.5 written there, both follow it
    file = model / "model" / "thresholds.json"
    file.write_text(json.dumps({**json.loads(file.read_text()), "thresholds": [0.5, 0.5, 0.5]}))
    assert evaluated()["test/accuracy"] == pytest.approx(half_accuracy)
    assert predicted() == _sets(names, half) != _sets(names, tuned)
    assert textsift.load(model).predict(_texts(data)).labels == _sets(names, half)


def test_multilabel_predict_cli_and_overrides(ml_run, tmp_path):
    run_dir, data = ml_run
    out = tmp_path / "p.csv"
    assert run("predict", str(run_dir), str(data), "--output", str(out)).exit_code == 0
    rows = list(csv.DictReader(out.open()))
    assert set(rows[0]) == {"row", "text", "labels", "p_arts", "p_neg", "p_pos"}
    assert rows[0]["labels"] == "pos" and rows[1]["labels"] == "arts,pos"  # "i love this great film"
    names, _, tuned, _ = _decisions(run_dir, data)
    assert [r["labels"] for r in rows] == [",".join(s) for s in _sets(names, tuned)]  # thresholds.json, in CSV too
    jsonl = run("predict", str(run_dir), str(data))
    first = json.loads(jsonl.stdout.splitlines()[1])
    assert first["labels"] == ["arts", "pos"] and set(first["probabilities"]) == {"arts", "neg", "pos"}
    none = run("predict", str(run_dir), str(data), "--threshold", "0.999999")
    assert all(json.loads(line)["labels"] == [] for line in none.stdout.splitlines())
    one = run("predict", str(run_dir), str(data), "--threshold", "0.999999", "--at-least-one")
    assert all(len(json.loads(line)["labels"]) == 1 for line in one.stdout.splitlines())
    two = run("predict", str(run_dir), str(data), "--threshold", "0.0", "--max-labels", "2")
    assert all(len(json.loads(line)["labels"]) == 2 for line in two.stdout.splitlines())


def test_binary_task_tunes_its_positive_threshold_and_shows_curves(tmp_path):
    from conftest import tiny_config

    # 8 negative and 3 positive examples: the regularised linear model ranks them right, but every positive
    # probability is below 0.5; the tuned threshold gets them all
    rows = [{"text": t, "label": l} for t, l in TINY if l == "neg"] + [{"text": t, "label": l} for t, l in TINY if l == "pos"][:3]
    data = write(tmp_path / "b.jsonl", rows)
    raw = tiny_config(data, "linear", trainer__epochs=1)
    raw["model"] = {"type": "linear", "C": 1.0}
    raw["thresholds"] = {"tune": "global", "positive_label": "pos"}
    result = textsift.train(resolve(raw), tmp_path / "run")
    decision = json.loads((tmp_path / "run" / "model" / "thresholds.json").read_text())
    assert decision["kind"] == "binary" and decision["positive"] == result.predictor.label_names.index("pos")
    assert (tmp_path / "run" / "report" / "binary_curves.png").is_file()
    loaded = textsift.load(tmp_path / "run")
    texts, truth = [r["text"] for r in rows], [r["label"] for r in rows]
    t = decision["thresholds"][0]
    probs = loaded.predict(texts).probabilities[:, decision["positive"]]
    assert (probs < 0.5).all() and t < 0.5  # argmax alone would call every example negative
    assert loaded.predict(texts).labels == ["pos" if p >= t else "neg" for p in probs] == truth
    evaluated = run("-q", "evaluate", str(tmp_path / "run"), str(data), "--json")
    assert evaluated.exit_code == 0, evaluated.output + evaluated.stderr
    assert json.loads(evaluated.stdout)["test/accuracy"] == 1.0  # evaluate decides with the threshold too
    with pytest.raises(ConfigError, match="threshold tuning is for multilabel and binary tasks"):
        trec = write(tmp_path / "three.jsonl", [{"text": t, "label": l} for t, l in TINY] + [{"text": "meh", "label": "mid"}] * 4)
        raw3 = tiny_config(trec, "bag", trainer__epochs=1)
        raw3["thresholds"] = {"tune": "global"}
        textsift.train(resolve(raw3), tmp_path / "run3")


def test_calibrating_a_thresholded_model_keeps_every_decision(ml_run, tmp_path):
    import shutil

    run_dir, data = ml_run
    model = tmp_path / "model"
    shutil.copytree(run_dir / "model", model)
    texts = [json.loads(line)["text"] for line in data.read_text().splitlines()] + ["happy acting", "sad music", "xyz"]
    before = textsift.load(model).predict(texts)
    result = run("-q", "evaluate", str(model), str(data), "--calibrate", "--calibration-data", str(data), "--json")
    assert result.exit_code == 0, result.output + result.stderr
    assert json.loads((model / "calibration.json").read_text())["temperature"] != 1.0
    after = textsift.load(model).predict(texts)
    assert after.labels == before.labels
    assert not np.allclose(after.probabilities, before.probabilities)
