"""``--model auto``: candidates on one split, the best by the validation metric, a leaderboard."""

from __future__ import annotations

import csv
import json
import random


import textsift
from textsift.config import load_config
from textsift.training.auto import candidate_configs, train_auto

from conftest import TINY, write_jsonl
from test_trust import error_of, run


def suffix_task(n: int, seed: int) -> list[dict]:
    """The label is the word's ending; every word is new: only character n-grams generalise (linear has them, bag not)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        stem = "".join(rng.choice("bcdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3))
        label = rng.choice(["ing", "ed"])
        rows.append({"text": f"{stem}{i}{label}", "label": label})
    return rows


def test_auto_chooses_the_better_candidate_even_when_it_comes_second(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", suffix_task(300, 0))
    validation = write_jsonl(tmp_path / "val.jsonl", suffix_task(100, 1))
    test = write_jsonl(tmp_path / "test.jsonl", suffix_task(100, 2))
    base = {"data": {"train": str(train), "validation": str(validation), "test": str(test)}}
    candidates = candidate_configs(lambda extra: load_config(base=base, overrides=extra), ["bag", "linear"])
    candidates.sort(key=lambda c: c.name != "bag")  # bag first: the winner must come from the scores, not the order
    result = train_auto(candidates, tmp_path / "run", budget_s=1, report=False)
    rows = {r["candidate"]: r for r in csv.DictReader((tmp_path / "run" / "leaderboard.csv").open())}
    assert rows["linear"]["chosen"] == "True" and rows["bag"]["chosen"] == "False"
    assert float(rows["linear"]["val/accuracy"]) > float(rows["bag"]["val/accuracy"]) + 0.2
    assert result.metrics["test/accuracy"] > 0.9
    assert textsift.load(tmp_path / "run").config.model.type == "linear"
    assert not (tmp_path / "run" / "candidates" / "bag" / "model").exists()  # only the winner's model is kept


def test_the_budget_stops_after_the_first_two(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY * 3])
    candidates = candidate_configs(lambda extra: load_config(base={"data": {"train": str(data)}}, overrides=extra),
                                   ["linear", "bag", "linear-C30"])
    assert len(candidates) > 2
    train_auto(candidates, tmp_path / "run", budget_s=0.001, report=False)
    board = json.loads((tmp_path / "run" / "leaderboard.json").read_text())["candidates"]
    assert [bool(r["skipped"]) for r in board] == [False, False] + [True] * (len(candidates) - 2)


def test_train_without_a_model_is_auto(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY * 3])
    result = run("train", "--train", str(data), "-o", str(tmp_path / "run"), "--budget", "1", "--no-report")
    assert result.exit_code == 0, result.stderr
    assert "auto: chose" in result.stdout and (tmp_path / "run" / "leaderboard.csv").is_file()
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    message = error_of(run("train", "--train", str(data), "--model", "bag", "--budget", "5", "-o", str(tmp_path / "b")))
    assert "--budget is the time --model auto spends" in message


def test_resuming_a_finished_auto_run_trains_nothing_again(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY * 3])
    make = lambda extra: load_config(base={"data": {"train": str(data)}}, overrides=extra)  # noqa: E731
    first = train_auto(candidate_configs(make, ["linear", "bag"]), tmp_path / "run", report=False)
    weights = (tmp_path / "run" / "model" / "model.safetensors").read_bytes()
    board = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    again = train_auto(candidate_configs(make, ["linear", "bag"]), tmp_path / "run", report=False, resume=True)
    assert (tmp_path / "run" / "model" / "model.safetensors").read_bytes() == weights  # not retrained
    assert json.loads((tmp_path / "run" / "leaderboard.json").read_text()) == board  # same scores, same times
    assert again.state.stop_reason == first.state.stop_reason


def test_a_small_held_out_split_is_replaced_by_cross_validation(tmp_path):
    """No validation file and few examples: each candidate is scored by 5-fold CV over train + validation (noise of
    one small split and a network's best-epoch pick on it decide otherwise), then only the winner is trained, on all
    of train + validation (test data given, no calibration: nothing else needs the held-out part)."""
    train = write_jsonl(tmp_path / "train.jsonl", suffix_task(300, 0))
    test = write_jsonl(tmp_path / "test.jsonl", suffix_task(100, 2))
    base = {"data": {"train": str(train), "test": str(test)}}
    candidates = candidate_configs(lambda extra: load_config(base=base, overrides=extra), ["bag", "linear"])
    result = train_auto(candidates, tmp_path / "run", budget_s=1, report=False)
    board = {r["candidate"]: r for r in json.loads((tmp_path / "run" / "leaderboard.json").read_text())["candidates"]}
    assert board["linear"]["chosen"] and board["linear"]["cv/folds"] == 5 and board["bag"]["cv/folds"] == 5
    assert board["linear"]["val/accuracy"] > board["bag"]["val/accuracy"] + 0.2  # the folds' mean
    assert result.metrics["cv/folds"] == 5 and result.metrics["cv/val/accuracy"] == board["linear"]["val/accuracy"]
    assert result.metrics["test/accuracy"] > 0.9 and result.metrics["auto/trained_on_validation_too"] == 1.0
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert f"{result.metrics['test/accuracy']:.4f}"[:5] in card and "test" in card  # the card has the test metrics
    saved = load_config(tmp_path / "run" / "config.yaml")  # the config the model was trained with, on every example
    assert saved.data.validation_split == 0 and saved.trainer.main_metric == "train/loss"
    meta = json.loads((tmp_path / "run" / "model" / "meta.json").read_text())
    assert len(meta["data"]) >= 1
    # the model directory records the run's metrics too (inspect and the server's /model read them): it had none
    assert meta["metrics"]["test/accuracy"] == result.metrics["test/accuracy"] and meta["metrics"]["cv/folds"] == 5
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert not (tmp_path / "run" / "candidates" / "bag" / "model").exists()


def test_a_candidate_past_the_deadline_stops_at_the_end_of_its_epoch(tmp_path):
    import time

    from textsift.config import resolve
    from textsift.training.auto import _Deadline

    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY * 3])
    config = resolve({"data": {"train": str(data)}, "model": {"type": "bag"}, "trainer": {"epochs": 50, "early_stopping": None}})
    result = textsift.train(config, callbacks=[_Deadline(time.perf_counter())])
    assert result.state.epoch == 1 and "time budget" in result.state.stop_reason


def test_linear_candidates_drop_character_ngrams_on_long_texts(tmp_path):
    from dataclasses import replace

    from textsift.data.example import Dataset
    from textsift.data.loading import Splits, load_splits
    from textsift.training.auto import LONG_TEXTS, _words_only_on_long_texts

    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY * 3])
    candidates = candidate_configs(lambda extra: load_config(base={"data": {"train": str(data)}}, overrides=extra),
                                   ["linear", "bag", "linear-C30"])
    splits = load_splits(candidates[0].config)
    _words_only_on_long_texts(candidates, splits)  # short texts: unchanged
    assert [c.config.tokenizer.char_ngrams for c in candidates if c.config.model.type == "linear"] == [(2, 5), (2, 5)]
    long = Dataset("long", [replace(ex, text=ex.text * (LONG_TEXTS // len(ex.text) + 1)) for ex in splits.train.examples])
    _words_only_on_long_texts(candidates, Splits(long, splits.validation, None, splits.labels))
    assert [c.config.tokenizer.char_ngrams for c in candidates if c.config.model.type == "linear"] == [None, None]
    assert [c.config.tokenizer.char_ngrams for c in candidates if c.config.model.type == "bag"] == [None]  # bags untouched


def test_without_test_data_the_cross_validated_winner_keeps_its_split_for_the_report(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", suffix_task(200, 0))
    candidates = candidate_configs(lambda extra: load_config(base={"data": {"train": str(train)}}, overrides=extra), ["linear", "bag"])
    result = train_auto(candidates, tmp_path / "run", budget_s=1, report=True)
    assert result.metrics["auto/trained_on_validation_too"] == 0.0 and "val/accuracy" in result.metrics
    assert (tmp_path / "run" / "report" / "report.html").is_file()


def test_a_third_candidate_trains_while_the_second_is_still_training_beside(tmp_path):
    """The linear candidates fit here while the bag trains in the second process (which alone takes seconds to start):
    the third candidate uses that wait, whatever the budget, and the bag's result is still collected."""
    train = write_jsonl(tmp_path / "train.jsonl", suffix_task(300, 0))
    validation = write_jsonl(tmp_path / "val.jsonl", suffix_task(1000, 1))  # 1000: no cross-validation
    base = {"data": {"train": str(train), "validation": str(validation)}}
    candidates = candidate_configs(lambda extra: load_config(base=base, overrides=[*extra, "trainer.epochs=30"]),
                                   ["linear-C30", "bag", "linear"])
    assert [c.name for c in candidates] == ["linear", "bag", "linear-C30"]  # in the order of CANDIDATES
    train_auto(candidates, tmp_path / "run", budget_s=0.001, report=False)
    board = {r["candidate"]: r for r in json.loads((tmp_path / "run" / "leaderboard.json").read_text())["candidates"]}
    assert not any(r["skipped"] for r in board.values()) and all(r["val/accuracy"] for r in board.values())


def test_a_zero_config_run_imports_neither_scikit_learn_nor_matplotlib_without_a_report(tmp_path):
    """Start-up is part of the time to a model: scikit-learn's import alone cost about 2 s, matplotlib's 0.5 s."""
    import subprocess
    import sys

    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY * 3])
    code = (
        "import sys\nfrom textsift.cli.app import main\n"
        f"sys.argv = ['textsift', 'train', '--train', {str(data)!r}, '-o', {str(tmp_path / 'run')!r}, '--no-report', '-q']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'matplotlib', 'pandas'}))\n"
    )
    env = {**__import__("os").environ, "TEXTSIFT_AUTO_SEQUENTIAL": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_the_defaults_are_linear_bag_and_bag_and_every_named_candidate_resolves(tmp_path):
    from textsift.training.auto import CANDIDATES

    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY])
    make = lambda extra: load_config(base={"data": {"train": str(data)}}, overrides=extra)  # noqa: E731
    assert [c.name for c in candidate_configs(make)] == ["linear_bag", "bag"]
    every = candidate_configs(make, [name for name, _ in CANDIDATES])
    assert {c.name: c.config.model.type for c in every} == {"linear_bag": "linear_bag", "linear": "linear", "bag": "bag", "linear-C30": "linear",
                                                            "linear-C3": "linear", "bag-chars": "bag"}
    assert next(c for c in every if c.name == "bag-chars").config.tokenizer.char_ngrams == (3, 5)


def test_an_unknown_candidate_is_refused_naming_the_known_ones(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY])
    message = error_of(run("train", "--train", str(data), "--candidates", "linear,svm", "-o", str(tmp_path / "r")))
    assert "--candidates: unknown candidate 'svm'; choose from linear_bag, linear, bag, linear-C30" in message
    message = error_of(run("train", "--train", str(data), "--model", "bag", "--candidates", "linear", "-o", str(tmp_path / "b")))
    assert "--candidates are what --model auto chooses from" in message


def test_a_candidate_clearly_behind_a_finished_rival_stops_at_its_epoch_end(tmp_path):
    """Successive halving for two: once the bag has trained as long as the finished linear model took and is still
    more than BEHIND_BY below it, it stops (the leaderboard says why); level with or ahead of it, it trains on."""
    from textsift.data.loading import load_splits
    from textsift.training.auto import _train_candidate

    train = write_jsonl(tmp_path / "train.jsonl", suffix_task(300, 0))
    validation = write_jsonl(tmp_path / "val.jsonl", suffix_task(200, 1))
    base = {"data": {"train": str(train), "validation": str(validation)}}
    (bag,) = candidate_configs(lambda extra: load_config(base=base, overrides=[*extra, "trainer.epochs=6",
                                                                             "trainer.early_stopping=null"]), ["bag"])
    splits = load_splits(bag.config)
    for rival_score, stops in ((1.01, True), (0.0, False)):
        records = tmp_path / f"run-{stops}" / "candidates"
        records.mkdir(parents=True)
        (records / "linear.json").write_text(json.dumps({"metrics": {"val/accuracy": rival_score}, "seconds": 0.0}))
        metrics, _ = _train_candidate(bag.config, records / "bag", splits, [], "val/accuracy", rivals=True)
        epochs = [json.loads(line)["epoch"] for line in (records / "bag" / "metrics.jsonl").read_text().splitlines()
                  if json.loads(line)["event"] == "epoch"]
        assert (len(epochs) == 1) is stops and (records / "bag.stopped").is_file() is stops
        assert "val/accuracy" in metrics  # a stopped candidate still reports its best epoch
    assert "below linear's 1.0100" in (tmp_path / "run-True" / "candidates" / "bag.stopped").read_text()


def test_a_cross_validated_winner_that_keeps_its_last_epoch_is_trained_for_all_its_epochs(tmp_path):
    """linear_bag keeps its last epoch (choosing one by validation cost points): after cross-validation its final run
    trains for its configured epochs, not for the epoch at which the folds' validation accuracy happened to peak."""
    train = write_jsonl(tmp_path / "train.jsonl", suffix_task(300, 0))
    test = write_jsonl(tmp_path / "test.jsonl", suffix_task(100, 2))
    base = {"data": {"train": str(train), "test": str(test)}}
    make = lambda extra: load_config(base=base, overrides=[*extra, "trainer.epochs=4"])  # noqa: E731
    candidates = candidate_configs(make, ["linear_bag", "bag"])
    assert candidates[0].config.trainer.restore_best is False
    result = train_auto(candidates, tmp_path / "run", report=False)
    assert result.metrics["cv/folds"] == 5 and result.metrics["cv/best_epoch_median"] == 4
    saved = load_config(tmp_path / "run" / "config.yaml")
    assert saved.model.type == "linear_bag" and saved.trainer.epochs == 4 and saved.data.validation_split == 0
    assert "finished all 4 epochs" in (tmp_path / "run" / "candidates" / "linear_bag" / "train.log").read_text()
