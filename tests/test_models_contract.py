"""The contract every registered model keeps (run over all of them, plugins included), on every backend that has it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import textsift
from textsift import registry
from textsift.config import resolve
from textsift.config.schema import BACKEND_MODELS
from textsift.errors import ConfigError

from conftest import TINY, model_settings, tiny_config

MODELS = registry.models.names()
FLAX_MODELS = sorted(BACKEND_MODELS["flax"])
#: every (backend, model) pair: torch has every registered model, flax those of its table
PAIRS = [("torch", m) for m in MODELS] + [("flax", m) for m in FLAX_MODELS]
PAIR_IDS = [f"{b}-{m}" for b, m in PAIRS]
#: multilabel: lstm on flax shares gru's network (RnnNetwork, the cell aside) and its BCE path, tested on gru
ML_PAIRS = [p for p in PAIRS if p != ("flax", "lstm")]


def test_every_builtin_model_is_covered():
    from textsift.backends.flax.networks import NETWORKS

    assert {"bag", "linear", "cnn", "lstm", "gru"} <= set(MODELS)
    assert set(NETWORKS) == set(FLAX_MODELS) == {"bag", "cnn", "lstm", "gru"}  # the config's table is the backend's


@pytest.mark.parametrize("backend,name", PAIRS, ids=PAIR_IDS)
def test_builds_from_its_default_config(backend, name, tiny_jsonl, tiny_bert):
    config = resolve({"data": {"train": str(tiny_jsonl)}, "model": model_settings(name, tiny_bert), "backend": backend})
    tokenizer = config.tokenizer.build().fit([])
    if backend == "flax":
        from textsift.backends.flax.networks import build_network

        from textsift.backends.flax.runtime import FlaxRuntime

        runtime = FlaxRuntime(build_network(config.model, vocab_size=50, num_labels=3, seed=0))
        logits = runtime.logits({"ids": np.array([[1, 2, 3], [4, 5, 0]]), "lengths": np.array([3, 2])})
        assert logits.shape == (2, 3) and np.isfinite(logits).all()
        return
    model = config.model.build(vocab_size=50, num_labels=3, tokenizer=tokenizer)
    batch = {"ids": torch.tensor([[1, 2, 3], [4, 5, 0]]), "lengths": torch.tensor([3, 2]),
             "offsets": torch.tensor([0, 3])}
    if config.model.input_format == "bag":
        batch["ids"] = torch.tensor([1, 2, 3, 4, 5])
    model.eval()
    assert model(batch).shape == (2, 3)


@pytest.mark.parametrize("backend,name", PAIRS, ids=PAIR_IDS)
def test_rejects_a_bad_config_with_a_matching_message(backend, name, tiny_jsonl, tiny_bert):
    base = model_settings(name, tiny_bert)
    data = {"train": str(tiny_jsonl)}
    with pytest.raises(ConfigError, match=r"unknown setting 'model.not_a_setting'"):
        resolve({"data": data, "backend": backend, "model": {**base, "not_a_setting": 1}})
    with pytest.raises(ConfigError, match=r"model.head.dropout: Input should be less than 1"):
        resolve({"data": data, "backend": backend, "model": {**base, "head": {"dropout": 2}}})
    with pytest.raises(ConfigError, match=r"model.head.activation: Input should be 'relu'"):
        resolve({"data": data, "backend": backend, "model": {**base, "head": {"activation": "swish"}}})


@pytest.mark.parametrize("name", sorted(set(MODELS) - set(FLAX_MODELS)))
def test_a_model_the_backend_lacks_is_a_one_line_error(name, tiny_jsonl, tiny_bert):
    with pytest.raises(ConfigError, match=rf"backend 'flax' has no '{name}' model \(it has bag, cnn, lstm, gru\): set backend: torch"):
        resolve({"data": {"train": str(tiny_jsonl)}, "backend": "flax", "model": model_settings(name, tiny_bert)})


@pytest.fixture(scope="module", params=PAIRS, ids=PAIR_IDS)
def trained(request, tmp_path_factory, tiny_bert):
    backend, name = request.param
    tmp = tmp_path_factory.mktemp(f"{backend}-{name}")
    data = tmp / "tiny.jsonl"
    data.write_text("".join(f'{{"text": "{t}", "label": "{l}"}}\n' for t, l in TINY))
    raw = tiny_config(data, name, trainer__epochs=40)
    raw["model"] = model_settings(name, tiny_bert)
    raw["backend"] = backend
    if name == "transformer":  # a random tiny encoder needs a larger step than a pretrained one
        raw["trainer"]["optimizer"] = {"lr": 2e-3}
    result = textsift.train(resolve(raw), tmp / "run")
    return name, result, tmp


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


def test_bag_feature_dropout_keeps_offsets_consistent():
    from textsift.backends.torch.networks.bag import BagSpec

    model = BagSpec(embed_dim=4, feature_dropout=0.5).build(vocab_size=20, num_labels=2)
    ids = torch.arange(1, 13)
    offsets = torch.tensor([0, 3, 3, 10])  # bags of 3, 0, 7 and 2 ids
    torch.manual_seed(0)
    kept, new_offsets = model._drop_features(ids, offsets)
    assert new_offsets[0] == 0 and torch.all(new_offsets[1:] >= new_offsets[:-1])
    assert new_offsets[-1] <= len(kept) and 0 < len(kept) < len(ids)
    # every kept id stays in its own bag
    bags = torch.bucketize(torch.arange(len(kept)), new_offsets, right=True) - 1
    original = torch.bucketize(kept - 1, offsets, right=True) - 1
    assert torch.equal(bags, original)
    model.train()
    assert model({"ids": ids, "offsets": offsets}).shape == (4, 2)
    model.eval()  # no dropout at prediction
    a = model({"ids": ids, "offsets": offsets})
    assert torch.equal(a, model({"ids": ids, "offsets": offsets}))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_rnn_poolings_ignore_padding(cell, pooling, bidirectional):
    from textsift.backends.torch.networks.rnn import GruSpec, LstmSpec

    spec = (LstmSpec if cell == "lstm" else GruSpec)(pooling=pooling, bidirectional=bidirectional, layers=2, embed_dim=8, hidden_size=6)
    torch.manual_seed(0)
    model = spec.build(vocab_size=30, num_labels=3).eval()
    seqs = [[3, 4, 5, 6, 7], [8, 9], [10]]
    padded = torch.zeros(3, 5, dtype=torch.long)
    for i, s in enumerate(seqs):
        padded[i, : len(s)] = torch.tensor(s)
    batch = model({"ids": padded, "lengths": torch.tensor([5, 2, 1])})
    for i, s in enumerate(seqs):
        alone = model({"ids": torch.tensor([s]), "lengths": torch.tensor([len(s)])})
        torch.testing.assert_close(batch[i : i + 1], alone, atol=1e-5, rtol=1e-5)


def test_cnn_output_does_not_depend_on_padding():
    from textsift.backends.torch.networks.cnn import CnnSpec

    torch.manual_seed(0)
    model = CnnSpec(embed_dim=8, channels=8, kernel_size=5).build(vocab_size=30, num_labels=3).eval()
    short = model({"ids": torch.tensor([[3, 4]]), "lengths": torch.tensor([2])})
    padded = model({"ids": torch.tensor([[3, 4, 0, 0, 0, 0, 0]]), "lengths": torch.tensor([2])})
    torch.testing.assert_close(short, padded)


ARTS = ("film", "acting", "music", "story", "movie", "work")


def multilabel_rows() -> list[dict]:
    """TINY with label sets: the sentiment, plus 'arts' when the text is about a film, music or a story."""
    return [{"text": t, "label": [l] + (["arts"] if any(w in t.split() for w in ARTS) else [])} for t, l in TINY]


@pytest.fixture(scope="module", params=ML_PAIRS, ids=[f"{b}-{m}" for b, m in ML_PAIRS])
def trained_multilabel(request, tmp_path_factory, tiny_bert):
    import json

    backend, name = request.param
    tmp = tmp_path_factory.mktemp(f"ml-{backend}-{name}")
    data = tmp / "tiny_ml.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in multilabel_rows()))
    raw = tiny_config(data, name, trainer__epochs=60)
    raw["task"] = "multilabel"
    raw["backend"] = backend
    raw["thresholds"] = {"tune": "none"}  # plain 0.5 thresholds: the model itself must separate the sets
    raw["model"] = model_settings(name, tiny_bert)
    raw["trainer"]["optimizer"] = {"lr": 2e-3 if name == "transformer" else 5e-3}
    if name == "bag":
        raw["trainer"]["optimizer"] = {"type": "textsift.training.optim:SparseAdamW", "lr": 0.1}
    result = textsift.train(resolve(raw), tmp / "run")
    return name, result, tmp


def test_overfits_a_multilabel_fixture(trained_multilabel):
    name, result, tmp = trained_multilabel
    assert result.metrics["test/accuracy"] == 1.0, (name, result.metrics)  # every label set exactly right
    assert result.metrics["test/label_cardinality"] == pytest.approx(sum(len(r["label"]) for r in multilabel_rows()) / 16)
    preds = textsift.load(tmp / "run" / "model").predict([t for t, _ in TINY])
    assert preds.multilabel and preds.labels == [sorted(r["label"], key=["arts", "neg", "pos"].index) for r in multilabel_rows()]
    probs = preds.probabilities
    assert probs.shape == (16, 3) and not np.allclose(probs.sum(axis=1), 1.0)  # independent sigmoids, not a softmax
    np.testing.assert_array_equal(probs, result.predictor.predict([t for t, _ in TINY]).probabilities)
