"""Data-parallel training with torchrun (gloo on CPU) equals one process with the same effective batch."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import textsift

from conftest import write_jsonl


PROBE = Path(__file__).parent / "plugins" / "ddp_probe.py"
POS = "good great happy lovely superb fine joyful bright sunny warm".split()
NEG = "bad awful sad dreadful poor grim gloomy dark rainy cold".split()
FILL = "the a day film song book trip meal story game".split()


def _rows(n: int, seed: int) -> list[dict]:
    """Sentiment by two telling words among two neutral ones: a task the CNN learns in a few epochs."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.sample(FILL, 2) + rng.sample(POS if label == "pos" else NEG, 2)
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return rows


def _config(tmp):
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump({
        "seed": 3,
        # 25 validation examples: the ranks score 13 and 12
        "data": {"train": str(write_jsonl(tmp / "train.jsonl", _rows(240, 1))),
                 "validation": str(write_jsonl(tmp / "validation.jsonl", _rows(25, 2))),
                 "test": str(write_jsonl(tmp / "test.jsonl", _rows(60, 3)))},
        "tokenizer": {"type": "words"},
        "model": {"type": "cnn", "embed_dim": 16, "channels": 16, "dropout": 0.0},
        # SGD: an update linear in the gradient, so the comparison is tight
        "trainer": {"epochs": 3, "batch_size": 8, "early_stopping": None,
                    "optimizer": {"type": "torch.optim:SGD", "lr": 0.5}},
    }))
    return path


def _epochs(run) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"event": "epoch"' in x]


def test_torchrun_two_processes_match_one(tmp_path):
    config = _config(tmp_path)
    single = subprocess.run([sys.executable, "-m", "textsift", "-q", "train", str(config), "-o", str(tmp_path / "one")],
                            capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    probe = tmp_path / "probe"
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(PROBE), "-q", "train", str(config), "-o", str(tmp_path / "two")],
        capture_output=True, text=True, env={**os.environ, "TEXTSIFT_DDP_PROBE": str(probe)},
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    ranks = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)]

    # each rank trained on its own share of every global batch, and the shares make up the batch
    one_epochs = _epochs(tmp_path / "one")
    assert len(ranks[0]["steps"]) == len(ranks[1]["steps"]) == one_epochs[-1]["step"]  # the single run's steps
    for first, second in zip(ranks[0]["steps"], ranks[1]["steps"]):
        assert first["batch"] == second["batch"]
        assert first["rows"] and second["rows"] and not set(first["rows"]) & set(second["rows"])
        assert sorted(first["rows"] + second["rows"]) == sorted(first["batch"])
        assert abs(len(first["rows"]) - len(second["rows"])) <= 1
    # every validation (one an epoch) was scored in parts and gathered: each example exactly once
    assert len(ranks[0]["gathered"]) == len(ranks[1]["gathered"]) == 3
    for first, second in zip(ranks[0]["gathered"], ranks[1]["gathered"]):
        assert first["total"] == second["total"] == 25
        assert sorted(first["index"] + second["index"]) == list(range(25))
        assert first["index"] and second["index"]

    a = load_file(str(tmp_path / "one" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-5, rtol=1e-4)
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert one["test/accuracy"] >= 0.9 and one["val/accuracy"] >= 0.9  # the model learned: a comparison that means something
    assert two["test/accuracy"] == pytest.approx(one["test/accuracy"])
    assert two["val/accuracy"] == pytest.approx(one["val/accuracy"])  # gathered across ranks
    # rank 0 alone wrote the run: one metrics log, one epoch line per epoch
    epochs = _epochs(tmp_path / "two")
    assert [e["epoch"] for e in epochs] == [1.0, 2.0, 3.0]
    for a_epoch, b_epoch in zip(one_epochs, epochs):  # the logged loss is the whole batch's, not one rank's share
        assert b_epoch["train/loss"] == pytest.approx(a_epoch["train/loss"], rel=2e-2)
    loaded = textsift.load(tmp_path / "two")
    assert loaded.predict(["a happy day", "a sad day"]).labels == textsift.load(tmp_path / "one").predict(["a happy day", "a sad day"]).labels


def test_sparse_bag_under_ddp_is_a_clear_error(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"train": {"type": "sort_detection", "size": 100}}, "model": "bag"}))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "textsift", "-q", "train", str(config), "-o", str(tmp_path / "r")],
        capture_output=True, text=True,
    )
    assert proc.returncode != 0
    assert "Set model.sparse: false" in " ".join(proc.stderr.split())
