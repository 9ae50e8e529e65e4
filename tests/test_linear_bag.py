"""linear_bag: the solved linear model and a trained bag of word n-grams in one network, probabilities averaged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import textsift
from textsift.config import resolve

from conftest import TINY, tiny_config, write_jsonl

PLUGINS = Path(__file__).parent / "plugins"
TEXTS = ["what a wonderful happy day", "an awful depressing movie", "unseen words only", "happy"]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_the_linear_member_is_the_linear_model_and_the_output_their_weighted_average(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY])
    both = textsift.train(resolve(tiny_config(data, "linear_bag", trainer__epochs=3)), tmp_path / "both", report=False)
    alone = textsift.train(resolve(tiny_config(data, "linear")), tmp_path / "alone", report=False)
    net = both.predictor.model
    # the solver fitted the linear member exactly as `model: linear` fits it; the epochs left it alone
    torch.testing.assert_close(net.linear.weight, alone.predictor.model.weight)
    torch.testing.assert_close(net.linear.bias, alone.predictor.model.bias)
    assert not any(p.requires_grad for p in net.linear.parameters())
    losses = [h["train/loss"] for h in both.state.history]
    assert len(losses) == 3 and losses[-1] < losses[0]  # the bag member trained, on its own loss, for the epochs
    history = json.loads((tmp_path / "both" / "metrics.json").read_text())
    assert history["test/examples"] == len(TINY)

    batch = both.predictor.encode(textsift.data.loading.examples_from_texts(TEXTS))
    from textsift.batching import collate

    tensors = {k: torch.as_tensor(v) for k, v in collate(batch.ids, np.arange(len(TEXTS)), "bag").items()}
    with torch.no_grad():
        linear = net.linear(tensors).numpy()
        bag = net.bag(net._words(tensors)).numpy()
    expected = 0.75 * _softmax(linear) + 0.25 * _softmax(bag)
    np.testing.assert_allclose(both.predictor.predict(TEXTS).probabilities, expected, atol=1e-5)
    assert both.predictor.model.spec.linear_weight == 0.75


def test_the_bag_member_reads_word_ngrams_only(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY])
    result = textsift.train(resolve(tiny_config(data, "linear_bag", trainer__epochs=2)), report=False)
    net = result.predictor.model
    first_char = net.linear.first_char_row
    assert 1 < first_char < net.linear.vocab_size  # the tokenizer made character n-grams, after the words
    before = result.predictor.predict(TEXTS).probabilities
    with torch.no_grad():  # the bag's rows of character n-grams: never read
        net.bag.embedding.weight[first_char:] = 100.0
    np.testing.assert_array_equal(result.predictor.predict(TEXTS).probabilities, before)
    ids = result.predictor.encode(textsift.data.loading.examples_from_texts(TEXTS)).ids
    texts = [ids.values[a:b] for a, b in zip(ids.offsets[:-1], ids.offsets[1:])]
    assert all((t >= first_char).any() for t in texts)  # each text has character n-grams ...
    assert list(net.trained_lengths(ids)) == [int((t < first_char).sum()) for t in texts]  # ... which the batch size ignores


def test_multilabel_averages_each_labels_probability(tmp_path):
    rows = [{"text": t, "label": [l] + (["loud"] if "!" in t or "great" in t else [])} for t, l in TINY]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    raw = tiny_config(data, "linear_bag", trainer__epochs=3, task="multilabel")
    result = textsift.train(resolve(raw), tmp_path / "run", report=False)
    net = result.predictor.model
    assert bool(net.sigmoid)
    probabilities = result.predictor.predict(TEXTS).probabilities
    assert probabilities.shape == (len(TEXTS), len(result.predictor.label_names))
    # saved and loaded: still sigmoid members (the flag travels with the weights)
    np.testing.assert_allclose(textsift.load(tmp_path / "run").predict(TEXTS).probabilities, probabilities, atol=1e-6)


def test_a_crash_in_the_bags_epochs_resumes_without_solving_again(tmp_path, monkeypatch, caplog):
    data = write_jsonl(tmp_path / "tiny.jsonl", [{"text": t, "label": l} for t, l in TINY])
    raw = tiny_config(data, "linear_bag", trainer__epochs=2, trainer__batch_size=4, trainer__log_every_steps=1)
    monkeypatch.syspath_prepend(str(PLUGINS))
    full = textsift.train(resolve(raw), tmp_path / "full", checkpoint_every_steps=2, report=False)
    raw["trainer"]["callbacks"] = [{"type": "crash_once:CrashOnce", "at_step": 5, "marker": str(tmp_path / "crashed")}]
    with pytest.raises(RuntimeError, match="simulated crash after step 5"):
        textsift.train(resolve(raw), tmp_path / "run", checkpoint_every_steps=2, report=False)
    caplog.clear()
    with caplog.at_level("INFO"):
        resumed = textsift.train(resolve(raw), tmp_path / "run", checkpoint_every_steps=2, resume=True, report=False)
    assert "Resumed from" in caplog.text and "Solved the fixed part" not in caplog.text
    np.testing.assert_array_equal(resumed.predictor.predict(TEXTS).probabilities, full.predictor.predict(TEXTS).probabilities)
