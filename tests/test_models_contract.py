"""The contract every registered model keeps (run over all of them, plugins included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import textsift
from textsift import registry
from textsift.config import resolve
from textsift.errors import ConfigError

from conftest import TINY, tiny_config

MODELS = registry.models.names()


def test_every_builtin_model_is_covered():
    assert {"bag", "cnn", "lstm", "gru"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_builds_from_its_default_config(name, tiny_jsonl):
    config = resolve({"data": {"train": str(tiny_jsonl)}, "model": name})
    model = config.model.build(vocab_size=50, num_labels=3)
    batch = {"ids": torch.tensor([[1, 2, 3], [4, 5, 0]]), "lengths": torch.tensor([3, 2]),
             "offsets": torch.tensor([0, 3])}
    if config.model.input_format == "bag":
        batch["ids"] = torch.tensor([1, 2, 3, 4, 5])
    model.eval()
    assert model(batch).shape == (2, 3)


@pytest.mark.parametrize("name", MODELS)
def test_rejects_a_bad_config_with_a_matching_message(name, tiny_jsonl):
    with pytest.raises(ConfigError, match=r"unknown setting 'model.not_a_setting'"):
        resolve({"data": {"train": str(tiny_jsonl)}, "model": {"type": name, "not_a_setting": 1}})
    with pytest.raises(ConfigError, match=r"model.head.dropout: Input should be less than 1"):
        resolve({"data": {"train": str(tiny_jsonl)}, "model": {"type": name, "head": {"dropout": 2}}})
    with pytest.raises(ConfigError, match=r"model.head.activation: Input should be 'relu'"):
        resolve({"data": {"train": str(tiny_jsonl)}, "model": {"type": name, "head": {"activation": "swish"}}})


@pytest.fixture(scope="module", params=MODELS)
def trained(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    data = tmp / "tiny.jsonl"
    data.write_text("".join(f'{{"text": "{t}", "label": "{l}"}}\n' for t, l in TINY))
    raw = tiny_config(data, request.param, trainer__epochs=40)
    result = textsift.train(resolve(raw), tmp / "run")
    return request.param, result, tmp


def test_overfits_16_examples(trained):
    name, result, _ = trained
    assert result.metrics["test/accuracy"] == 1.0, name


def test_save_then_load_gives_identical_probabilities(trained):
    name, result, tmp = trained
    texts = [t for t, _ in TINY] + ["an unseen text about nothing", "happy film"]
    loaded = textsift.load(tmp / "run" / "model")
    before = result.predictor.predict(texts).probabilities
    after = loaded.predict(texts).probabilities
    np.testing.assert_array_equal(before, after)
    assert loaded.predict(texts).labels == result.predictor.predict(texts).labels


def test_batch_prediction_equals_one_by_one(trained):
    name, result, _ = trained
    texts = [t for t, _ in TINY] + ["a b c d e f g h i j k l", "x"]
    batch = result.predictor.predict(texts, batch_size=7).probabilities
    single = np.concatenate([result.predictor.predict([t]).probabilities for t in texts])
    np.testing.assert_allclose(batch, single, atol=1e-6)


def test_probabilities_sum_to_one_and_labels_are_named(trained):
    _, result, _ = trained
    preds = result.predictor.predict(["happy film", "awful film", "zzz"])
    assert set(preds.labels) <= {"pos", "neg"} and preds.label_names == ["neg", "pos"]
    np.testing.assert_allclose(preds.probabilities.sum(1), 1.0, rtol=1e-5)
    assert preds.top_k(1)[0][0][0] == preds.labels[0]
