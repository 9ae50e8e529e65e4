"""Data-parallel training with torchrun (gloo on CPU) equals one process with the same effective batch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

import textsift


def _config(path):
    path.write_text(yaml.safe_dump({
        "seed": 3,
        "data": {"train": {"type": "sort_detection", "size": 240, "seed": 1},
                 "test": {"type": "sort_detection", "size": 60, "seed": 2}},
        "tokenizer": {"type": "words"},
        "model": {"type": "cnn", "embed_dim": 16, "channels": 16, "dropout": 0.0},
        # SGD: an update linear in the gradient, so the comparison is tight
        "trainer": {"epochs": 2, "batch_size": 8, "early_stopping": None,
                    "optimizer": {"type": "torch.optim:SGD", "lr": 0.1}},
    }))
    return path


def test_torchrun_two_processes_match_one(tmp_path):
    config = _config(tmp_path / "c.yaml")
    single = subprocess.run([sys.executable, "-m", "textsift", "-q", "train", str(config), "-o", str(tmp_path / "one")],
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "textsift", "-q", "train", str(config), "-o", str(tmp_path / "two")],
        capture_output=True, text=True, timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "model" / "model.safetensors"))
    start = textsift.load(tmp_path / "one")  # noqa: F841  (both directories load)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-5, rtol=1e-4)
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["test/accuracy"] == pytest.approx(one["test/accuracy"])
    assert two["val/accuracy"] == pytest.approx(one["val/accuracy"])  # gathered across ranks
    # rank 0 alone wrote the run: one metrics log, one epoch line per epoch
    epochs = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines() if '"event": "epoch"' in x]
    assert [e["epoch"] for e in epochs] == [1.0, 2.0]
    one_epochs = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines() if '"event": "epoch"' in x]
    for a_epoch, b_epoch in zip(one_epochs, epochs):  # the logged loss is the whole batch's, not one rank's share
        assert b_epoch["train/loss"] == pytest.approx(a_epoch["train/loss"], rel=2e-2)
    assert textsift.load(tmp_path / "two").predict(["a b c"]).labels[0] in ("sorted", "unsorted")


def test_sparse_bag_under_ddp_is_a_clear_error(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"train": {"type": "sort_detection", "size": 100}}, "model": "bag"}))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "textsift", "-q", "train", str(config), "-o", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "Set model.sparse: false" in " ".join(proc.stderr.split())
