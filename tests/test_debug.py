"""textsift debug data (checks, leakage, label noise), the cheap checks every train runs, and model cards."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
from typer.testing import CliRunner

from textsift.cli import commands  # noqa: F401
from textsift.cli.app import app
from textsift.config import load_config
from textsift.data.checks import cheap_checks, compact_key, exact_matches, longer_than, normalize
from textsift.data.example import Dataset, Example
from textsift.data.labels import LabelSet
from textsift.debug import debug_data
from textsift.debug.minhash import near_duplicates
from textsift.debug.noise import confident_learning, find_label_noise

from conftest import TINY, tiny_config, write_jsonl

runner = CliRunner()


def dataset(texts: list[str], labels: list[str] | None = None, name: str = "d") -> Dataset:
    labels = labels or ["a"] * len(texts)
    return Dataset(name, [Example(text=t, label=label, row=i + 2) for i, (t, label) in enumerate(zip(texts, labels))])


# --- normalisation and the cheap checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["Hello,  WORLD!!", "hello world", "ＨＥＬＬＯ world…", "hello\tworld\n", "'Hello' -- world?"])
def test_normalize_ignores_case_punctuation_whitespace_and_unicode_form(text):
    assert normalize(text) == "hello world"
    assert compact_key(text) == b"helloworld"


@pytest.mark.parametrize("text", ["Straße ﬁne", "日本語、テスト。", "a_b c’d ２０２０", "naïve café — «ok»", "e\u0301t\u00e9"])
def test_compact_key_is_normalize_without_spaces(text):
    assert compact_key(text) == normalize(text).replace(" ", "").encode("utf-8")


def test_exact_matches_ignore_case_punctuation_and_spacing():
    train = dataset(["the cat sat", "U.S.A. won't", "a dog"])
    other = dataset(["The cat, SAT!", "usa wont", "a  dog.", "no copy here"])
    assert sorted(exact_matches(train, other)) == [(0, 0), (1, 1), (2, 2)]


def test_cheap_checks_find_leakage_missing_labels_and_truncation():
    train = dataset(["one two three", "four five six", "seven " * 40], ["x", "y", "x"])
    test = dataset(["One, two; THREE.", "something new"], ["x", "x"])
    labels = LabelSet(["x", "y"])
    results = {r.name: r for r in cheap_checks(train, None, test, labels, max_length=20)}
    assert results["leakage_exact"].status == "fail"
    assert results["leakage_exact"].rows[0]["row"] == 2 and results["leakage_exact"].rows[0]["train_row"] == 2
    assert "1 of 2 test texts" in results["leakage_exact"].message
    assert results["labels_missing"].status == "warn" and "test has no example of 'y'" in results["labels_missing"].message
    assert results["truncation"].status == "warn" and "at least 1 of 3 train texts" in results["truncation"].message
    clean = {r.name: r.status for r in cheap_checks(train, None, dataset(["new", "other"], ["x", "y"]), labels, max_length=100)}
    assert clean == {"leakage_exact": "pass", "labels_missing": "pass", "truncation": "pass"}


def test_longer_than_counts_words():
    assert not longer_than("a b c", 3) and longer_than("a b c d", 3)
    assert not longer_than("abcdefghij", 3)  # one long word is one word
    assert longer_than("a\nb\tc d", 3)


def test_train_logs_the_cheap_checks_and_data_checks_false_turns_them_off(tmp_path, caplog):
    from textsift.data.loading import load_splits

    train = write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": label} for t, label in TINY])
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": TINY[0][0].upper() + "!", "label": "pos"}, {"text": "fresh text", "label": "pos"}])
    config = load_config(base={"data": {"train": str(train), "test": str(test)}})
    with caplog.at_level(logging.WARNING, logger="textsift"):
        splits = load_splits(config)
    assert any("leakage_exact" in r.message and "1 of 2 test texts" in r.message for r in caplog.records)
    assert any("labels_missing" in r.message and "'neg'" in r.message for r in caplog.records)
    assert [c.name for c in splits.checks] == ["leakage_exact", "labels_missing", "truncation"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="textsift"):
        quiet = load_splits(load_config(base={"data": {"train": str(train), "test": str(test), "checks": False}}))
    assert quiet.checks == [] and not [r for r in caplog.records if "Data check" in r.message]


def test_cross_validation_makes_the_same_cheap_checks(tmp_path, caplog):
    """textsift cv read its data without the checks every training run makes: a validation file holding a training
    text went unremarked."""
    from textsift.training.cv import cross_validate

    rows = [{"text": t, "label": label} for t, label in TINY] * 2
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    validation = write_jsonl(tmp_path / "validation.jsonl", [{"text": TINY[0][0], "label": TINY[0][1]}, {"text": "fresh text", "label": "pos"}])
    config = load_config(base={"data": {"train": str(train), "validation": str(validation)}, "model": {"type": "linear"},
                               "tokenizer": {"type": "hashed_ngrams"}})
    with caplog.at_level(logging.WARNING, logger="textsift"):
        cross_validate(config, 2)
    assert any("leakage_exact" in r.message and "1 of 2 validation texts" in r.message for r in caplog.records)


# --- near duplicates ------------------------------------------------------------------------------------------------

def test_near_duplicates_find_edited_copies_and_nothing_else():
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(3000)]
    left = [list(rng.choice(vocab, 40, replace=False)) for _ in range(300)]
    right = [list(rng.choice(vocab, 40, replace=False)) for _ in range(200)]
    planted = {}
    for j, i in enumerate(range(0, 60)):  # right[j] becomes left[i] with 10% of its words replaced
        copy = list(left[i])
        for k in rng.choice(40, 4, replace=False):
            copy[k] = f"new{j}_{k}"
        right[j] = copy
        planted[j] = i
    found = near_duplicates([" ".join(w) for w in left], [" ".join(w) for w in right], threshold=0.8)
    assert {(p.right, p.left) for p in found} == set(planted.items())
    assert all(abs(p.jaccard - 36 / 44) < 1e-9 for p in found)
    assert near_duplicates(["", "a"], ["", "b"]) == []
    # a repeated word counts twice: one of ten words replaced keeps 9/11 even when the others repeat
    assert [round(p.jaccard, 4) for p in near_duplicates(["a a a b b c d e f g"], ["a a a b b c d e f x"])] == [round(9 / 11, 4)]


# --- label noise ----------------------------------------------------------------------------------------------------

def test_confident_learning_on_known_probabilities():
    rng = np.random.default_rng(0)
    n, m = 600, 3
    true = rng.integers(0, m, n)
    probs = np.full((n, m), 0.05)
    probs[np.arange(n), true] = 0.9
    given = true.copy()
    flipped = rng.choice(n, 30, replace=False)
    given[flipped] = (true[flipped] + 1) % m
    noise = confident_learning(probs, given, ["a", "b", "c"])
    assert set(np.flatnonzero(noise.issues)) == set(flipped)
    assert noise.confident_joint.sum() == n and noise.confident_joint.trace() == n - 30
    assert np.allclose(noise.noise_rates.sum(axis=1), 1.0)
    assert (noise.suggested[flipped] == true[flipped]).all()
    ranked = noise.ranked_issues()
    assert len(ranked) == 30 and np.all(np.diff(noise.score[ranked]) <= 0)


def test_find_label_noise_flags_flipped_labels_of_separable_text():
    rng = np.random.default_rng(1)
    words = {c: [f"{c}{i}" for i in range(30)] for c in ("sport", "food", "tech")}
    names = sorted(words)
    texts, given = [], []
    for k in range(450):
        c = names[k % 3]
        texts.append(" ".join(rng.choice(words[c], 6)) + " " + " ".join(rng.choice(["the", "a", "is", "of"], 3)))
        given.append(k % 3)
    given = np.array(given)
    flipped = rng.choice(len(given), 20, replace=False)
    given[flipped] = (given[flipped] + 1) % 3
    noise = find_label_noise(texts, given, names, folds=5)
    flagged = set(np.flatnonzero(noise.issues))
    assert len(flagged & set(flipped)) >= 18 and len(flagged - set(flipped)) <= 2


def test_a_label_with_one_example_does_not_take_in_every_class():
    """One example labelled RARE among 600: its out-of-sample probabilities of RARE are near 0, so its threshold was
    near 0 and a share of every class became 'confidently RARE' (27% of the labels flagged on 3,000 emotion texts)."""
    rng = np.random.default_rng(0)
    n, m = 601, 4
    given = np.concatenate([rng.integers(0, 3, n - 1), [3]])
    probs = np.full((n, m), 0.02)
    probs[np.arange(n), given] = 0.9
    probs[:, 3] = rng.uniform(0.0, 0.05, n)  # the models never learnt RARE
    probs /= probs.sum(axis=1, keepdims=True)
    noise = confident_learning(probs, given, ["a", "b", "c", "RARE"])
    assert not noise.issues.any()
    assert np.isinf(noise.thresholds[3]) and noise.confident_joint[:, 3].sum() == 0


# --- debug data -------------------------------------------------------------------------------------------------------

def _statuses(report) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def test_debug_data_reports_what_train_rejects_and_goes_on(tmp_path):
    rows = [{"text": t, "label": label} for t, label in TINY]
    rows[3] = {"text": "   ", "label": "pos"}
    rows[5] = {"text": "no label here", "label": ""}
    rows.append({"text": rows[0]["text"], "label": "neg"})  # the same text, another label
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "a new text of its own", "label": "meh"}, {"text": "another fresh one", "label": "pos"},
                                                 {"text": "a third one", "label": "POS"}])
    report = debug_data(load_config(base={"data": {"train": str(train), "test": str(test)}}), label_noise=False)
    by_name = {c.name: c for c in report.checks}
    assert report.failed
    lookalike = by_name["labels_lookalike"]  # 'POS' beside 'pos': a class of its own
    assert lookalike.status == "warn" and "'pos' (7) / 'POS' (1)" in lookalike.message and lookalike.rows == [
        {"split": "test", "row": 3, "label": "POS", "file": str(test)}]
    assert by_name["empty_texts"].status == "fail" and "row 4: the text (column 'text') is empty" in by_name["empty_texts"].message
    assert by_name["labels_given"].status == "fail" and "row 6: the label (column 'label') is empty" in by_name["labels_given"].message
    assert by_name["label_set"].status == "fail" and "label 'meh' is not in the label set [neg, pos]" in by_name["label_set"].message
    assert by_name["conflicting_labels"].status == "warn" and {r["row"] for r in by_name["conflicting_labels"].rows} == {1, 17}
    assert by_name["duplicates"].status == "warn"
    assert by_name["label_noise"].status == "info"
    assert report.summary_line().startswith(f"{len(report.checks)} checks: ")


def test_debug_data_bad_file_is_a_failed_check(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text('{"text": "fine", "label": "a"}\n{"text": "also fine", "label": "b"}\nnot json\n', encoding="utf-8")
    report = debug_data(load_config(base={"data": {"train": str(train)}}), label_noise=False)
    read = next(c for c in report.checks if c.name == "read_train")
    assert read.status == "fail" and "line 3: not valid JSON" in read.message and "the 2 rows read before the error are checked" in read.message
    assert _statuses(report)["sizes"] == "pass"  # the two good rows are checked


def test_debug_data_cli_exit_codes_json_and_report(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": label} for t, label in TINY])
    clean = write_jsonl(tmp_path / "clean.jsonl", [{"text": "a lovely sunny afternoon", "label": "pos"}, {"text": "a gloomy rainy night", "label": "neg"}])
    result = runner.invoke(app, ["debug", "data", "--train", str(train), "--test", str(clean), "--json", "--folds", "4"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    assert summary["fail"] == 0 and summary["checks"] >= 15

    leaked = write_jsonl(tmp_path / "leaked.jsonl", [{"text": "WHAT a wonderful, happy day!", "label": "pos"}, {"text": "a gloomy rainy night", "label": "neg"}])
    out = tmp_path / "report"
    result = runner.invoke(app, ["debug", "data", "--train", str(train), "--test", str(leaked), "--report", str(out), "--folds", "4"])
    assert result.exit_code == 1, result.output
    assert "✘ leakage_exact" in result.stdout and "1 failed" in result.stdout
    for name in ("report.html", "report.json", "checks.csv", "leakage.csv", "label_issues.csv", "noise_matrix.csv", "label_distribution.csv"):
        assert (out / name).is_file(), name
    leaks = list(csv.DictReader((out / "leakage.csv").open(encoding="utf-8")))
    assert leaks[0]["row"] == "1" and leaks[0]["train_row"] == "1" and leaks[0]["kind"] == "exact"
    with (out / "label_issues.csv").open(encoding="utf-8") as f:
        assert next(csv.reader(f)) == ["row", "text", "given_label", "suggested_label", "score", "p_given", "p_suggested"]
    again = runner.invoke(app, ["debug", "data", "--train", str(train), "--report", str(out), "--no-label-noise"])
    assert again.exit_code == 1 and "--overwrite" in again.stderr


def test_debug_data_config_file_and_set_like_train(tmp_path):
    rows = [{"body": t, "y": label} for t, label in TINY]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    config = tmp_path / "config.yaml"
    config.write_text(f"data: {{train: {train}, reader: {{type: jsonl, text_column: body}}}}\n", encoding="utf-8")
    result = runner.invoke(app, ["debug", "data", str(config), "--set", "data.reader.label_column=y", "--no-label-noise", "--json"])
    assert result.exit_code == 0, result.output
    missing = runner.invoke(app, ["debug", "data", str(config), "--no-label-noise", "--json"])
    assert missing.exit_code == 1
    check = json.loads(missing.stdout)["checks"][0]
    assert check["name"] == "read_train" and "no column 'label' (data.reader.label_column)" in check["message"]


# --- model cards ------------------------------------------------------------------------------------------------------

def test_every_model_directory_gets_a_model_card_hugging_face_reads(tmp_path):
    import textsift
    from huggingface_hub import ModelCard

    train = write_jsonl(tmp_path / "tiny.jsonl", [{"text": t, "label": label} for t, label in TINY])
    result = textsift.train(tiny_config(train, trainer__epochs=3, trainer__calibration="temperature"), tmp_path / "run")
    readme = result.model_dir / "README.md"
    card = ModelCard.load(readme)  # a local file: no hub access
    assert card.data.library_name == "textsift" and card.data.pipeline_tag == "text-classification"
    results = {(r.metric_type, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert results[("accuracy", "Accuracy")] == pytest.approx(result.metrics["test/accuracy"])
    assert results[("f1", "Macro F1")] == pytest.approx(result.metrics["test/macro_f1"], abs=1e-6)
    assert card.data.eval_results[0].dataset_split == "test"
    text = readme.read_text(encoding="utf-8")
    for heading in ("## Model details", "## Intended use", "## Training data", "## Evaluation results", "### Calibration",
                    "## Limitations", "## How to use"):
        assert heading in text
    assert "| neg |" in text and "Temperature scaling: T = " in text and "leakage_exact" in text

    readme.unlink()
    out = runner.invoke(app, ["card", str(tmp_path / "run")])
    assert out.exit_code == 0, out.output
    assert readme.read_text(encoding="utf-8") == text
    bad = runner.invoke(app, ["card", str(tmp_path)])
    assert bad.exit_code == 1 and "not a model directory" in bad.stderr


def test_train_no_data_checks_flag(tmp_path):
    train = write_jsonl(tmp_path / "tiny.jsonl", [{"text": t, "label": label} for t, label in TINY])
    args = ["train", "--train", str(train), "--test", str(train), "--model", "bag", "--set", "trainer.epochs=1", "--no-report"]
    result = runner.invoke(app, [*args, "--output", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "leakage_exact" in result.stderr
    quiet = runner.invoke(app, [*args, "--output", str(tmp_path / "b"), "--no-data-checks"])
    assert quiet.exit_code == 0, quiet.output
    assert "leakage_exact" not in quiet.stderr
    assert "data checks were turned off" in (tmp_path / "b" / "model" / "README.md").read_text(encoding="utf-8")


def test_label_noise_is_not_judged_when_the_models_learn_nothing(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": label} for t, label in TINY])  # every word unique
    report = debug_data(load_config(base={"data": {"train": str(train)}}), folds=4)
    noise = next(c for c in report.checks if c.name == "label_noise")
    assert noise.status == "info" and "not judged" in noise.message and noise.rows == []
