"""The linear model is TF-IDF + logistic regression: the same probabilities as scikit-learn's pipeline."""

from __future__ import annotations

import numpy as np
import pytest

import textsift
from textsift.config import resolve
from textsift.data.loading import examples_from_texts
from textsift.errors import ConfigError

from conftest import TINY, write_jsonl

NEUTRAL = [("the film is on at nine", "neu"), ("a movie about a family", "neu"), ("the music was played twice", "neu"),
           ("people went to the story", "neu"), ("work starts at the day", "neu"), ("news of the film", "neu")]


def test_probabilities_match_scikit_learn_tfidf_and_logistic_regression(tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    rows = TINY + NEUTRAL
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in rows])
    config = resolve({
        "data": {"train": str(data), "validation": str(data)},
        "model": {"type": "linear", "C": 3.0, "tol": 1e-8},
        # words only, every word kept: the features of TfidfVectorizer(token_pattern=\w+)
        "tokenizer": {"type": "hashed_ngrams", "word_ngrams": 1, "char_ngrams": None, "min_count": 1, "pattern": r"\w+"},
    })
    result = textsift.train(config)
    texts = [t for t, _ in rows] + ["a happy family film", "dreadful news", "unseen words only"]
    ours = result.predictor.predict(texts).probabilities

    vectorizer = TfidfVectorizer(sublinear_tf=True, token_pattern=r"\w+")
    x = vectorizer.fit_transform([t for t, _ in rows])
    clf = LogisticRegression(C=3.0, tol=1e-8, max_iter=1000).fit(x, [label for _, label in rows])
    theirs = clf.predict_proba(vectorizer.transform(texts))[:, [list(clf.classes_).index(n) for n in result.predictor.label_names]]
    np.testing.assert_allclose(ours, theirs, atol=2e-3)
    assert result.state.stop_reason.startswith("the solver converged")


def test_binary_task_uses_both_outputs(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY])
    result = textsift.train(resolve({"data": {"train": str(data), "validation": str(data)}, "model": {"type": "linear"}}))
    preds = result.predictor.predict(["what a wonderful happy day", "an awful depressing movie"])
    assert preds.labels == ["pos", "neg"]
    np.testing.assert_allclose(preds.probabilities.sum(axis=1), 1.0, atol=1e-6)
    # inspect counts the weight and bias, which sit outside any submodule (it said 0)
    modules = result.predictor.runtime.describe()["parameters"]["per_module"]
    assert modules["weight"] == result.predictor.model.weight.numel() > 0 and modules["bias"] == 2


def test_hidden_layers_are_refused(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY])
    with pytest.raises(ConfigError, match="model.head.hidden_dims: the linear model has no hidden layers"):
        resolve({"data": {"train": str(data)}, "model": {"type": "linear", "head": {"hidden_dims": [8]}}})


def test_word_and_character_features_are_normalised_each_on_their_own(tmp_path):
    import torch

    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY])
    result = textsift.train(resolve({"data": {"train": str(data), "validation": str(data)}, "model": {"type": "linear"},
                                     "tokenizer": {"min_count": 1}}))
    predictor = result.predictor
    assert predictor.tokenizer.spec.char_space == "separate" and predictor.tokenizer.spec.char_ngrams == (2, 5)
    ids = predictor.tokenizer.encode(examples_from_texts(["a happy film"]))
    rows, feats, weights = predictor.model.features(torch.from_numpy(ids.values), torch.from_numpy(ids.offsets[:-1]))
    chars = feats >= predictor.model.first_char_row
    assert 0 < int(chars.sum()) < len(feats)
    assert float((weights[chars] ** 2).sum()) == pytest.approx(1.0, abs=1e-5)
    assert float((weights[~chars] ** 2).sum()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("classes, class_weight", [(2, None), (4, None), (3, "balanced"), (2, "balanced")])
def test_solver_finds_scikit_learns_coefficients(classes, class_weight):
    """The L-BFGS fit minimises scikit-learn's LogisticRegression objective: the same coefficients and intercepts."""
    from scipy.sparse import random as sparse_random
    from sklearn.linear_model import LogisticRegression

    from textsift.backends.torch.networks.linear import _sample_weights, logistic_regression

    rng = np.random.default_rng(classes)
    x = sparse_random(300, 40, density=0.2, format="csr", random_state=classes)
    labels = (x @ rng.normal(size=(40, classes))).argmax(1) if classes > 2 else (x @ rng.normal(size=40) > 0.3).astype(int)
    clf = LogisticRegression(C=5.0, tol=1e-10, max_iter=5000, class_weight=class_weight).fit(x, labels)
    if classes == 2:
        y, kind = (labels == 1).astype(float)[:, None], "binary"
    else:
        y, kind = np.eye(classes)[labels], "multinomial"
    fitted = logistic_regression(x, y, 5.0, kind, _sample_weights(labels, class_weight or "none"), 5000, 1e-10)
    assert fitted.converged
    np.testing.assert_allclose(fitted.weight, clf.coef_.T, atol=1e-4)
    np.testing.assert_allclose(fitted.bias, clf.intercept_, atol=1e-4)


@pytest.mark.parametrize("classes", [2, 4])
def test_float32_solver_lands_near_the_exact_optimum(classes):
    """At tolerances float32 resolves (the default 1e-4 and above 1e-6) the products run in float32: the model's
    probabilities stay within 1e-3 of scikit-learn's solution solved to 1e-10."""
    from scipy.sparse import random as sparse_random
    from scipy.special import expit, softmax
    from sklearn.linear_model import LogisticRegression

    from textsift.backends.torch.networks.linear import logistic_regression

    rng = np.random.default_rng(classes)
    x = sparse_random(300, 40, density=0.2, format="csr", random_state=classes)
    labels = (x @ rng.normal(size=(40, classes))).argmax(1) if classes > 2 else (x @ rng.normal(size=40) > 0.3).astype(int)
    exact = LogisticRegression(C=5.0, tol=1e-10, max_iter=5000).fit(x, labels).predict_proba(x)
    y, kind = ((labels == 1).astype(float)[:, None], "binary") if classes == 2 else (np.eye(classes)[labels], "multinomial")
    fitted = logistic_regression(x, y, 5.0, kind, None, 5000, 1e-5)
    z = x @ fitted.weight + fitted.bias
    ours = softmax(z, axis=1) if kind == "multinomial" else expit(z)
    assert fitted.converged and fitted.weight.dtype == np.float64
    np.testing.assert_allclose(ours, exact if kind == "multinomial" else exact[:, 1:], atol=1e-3)


def test_solver_gives_the_same_model_whatever_the_thread_count():
    """The same data fits the same coefficients on one thread or two: float32 sums split over threads round
    differently, and the solver's path followed them (on sst2 a different model, 0.6 point apart on test)."""
    import torch
    from scipy.sparse import random as sparse_random

    from textsift.backends.torch.networks.linear import logistic_regression

    rng = np.random.default_rng(0)
    x = sparse_random(3000, 4000, density=0.01, format="csr", random_state=1)
    y = np.eye(4)[rng.integers(0, 4, 3000)]
    before = torch.get_num_threads()
    fits = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            fits.append(logistic_regression(x, y, 10.0, "multinomial", None, 1000, 1e-4))
            assert torch.get_num_threads() == threads  # the caller's setting is left as it was
    finally:
        torch.set_num_threads(before)
    assert fits[0].iterations == fits[1].iterations
    np.testing.assert_array_equal(fits[0].weight, fits[1].weight)


def test_multilabel_solver_is_one_binary_regression_per_label():
    from scipy.sparse import random as sparse_random
    from sklearn.linear_model import LogisticRegression

    from textsift.backends.torch.networks.linear import logistic_regression

    rng = np.random.default_rng(0)
    x = sparse_random(200, 30, density=0.3, format="csr", random_state=1)
    y = (x @ rng.normal(size=(30, 3)) > 0.2).astype(float)
    fitted = logistic_regression(x, y, 2.0, "binary", None, 5000, 1e-10)
    for j in range(3):
        clf = LogisticRegression(C=2.0, tol=1e-10, max_iter=5000).fit(x, y[:, j])
        np.testing.assert_allclose(fitted.weight[:, j], clf.coef_[0], atol=1e-4)
        np.testing.assert_allclose(fitted.bias[j], clf.intercept_[0], atol=1e-4)


def test_trains_without_validation_data_logging_its_training_loss(tmp_path):
    """With no validation data a run monitors train/loss: the linear model logs it (the mean log-loss at the solution)."""
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in TINY + NEUTRAL])
    result = textsift.train(resolve({
        "data": {"train": str(data), "validation_split": 0.0}, "model": {"type": "linear"},
        "trainer": {"main_metric": "train/loss", "main_metric_mode": "min", "early_stopping": None},
    }))
    rows = TINY + NEUTRAL
    predictor = result.predictor
    probabilities = predictor.predict([t for t, _ in rows]).probabilities  # no calibration: the softmax of the logits
    gold = [predictor.label_names.index(l) for _, l in rows]
    expected = float(-np.mean(np.log(probabilities[np.arange(len(rows)), gold])))
    assert result.state.history[-1]["train/loss"] == pytest.approx(expected, rel=1e-3)


def test_the_solver_fits_the_loss_the_config_asks_for(tmp_path):
    """trainer.loss reaches a model fitted by its solver: class weights become the solver's sample weights (the same
    fit as model.class_weight: balanced), label smoothing its targets; a loss it cannot minimise is refused by name."""
    rows = TINY + NEUTRAL[:3]  # three classes, unbalanced (8 / 8 / 3)
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": l} for t, l in rows])

    def fit(**settings):
        raw = {"data": {"train": str(data), "validation": str(data)}, "model": {"type": "linear", "C": 3.0, "tol": 1e-7},
               **settings}
        return textsift.train(resolve(raw)).predictor

    plain = fit()
    by_loss = fit(trainer={"loss": {"type": "cross_entropy", "class_weights": "balanced"}})
    by_model = fit(model={"type": "linear", "C": 3.0, "tol": 1e-7, "class_weight": "balanced"})
    np.testing.assert_allclose(by_loss.model.weight.detach().numpy(), by_model.model.weight.detach().numpy(), atol=1e-5)
    assert not np.allclose(by_loss.model.weight.detach().numpy(), plain.model.weight.detach().numpy(), atol=1e-3)
    texts = [t for t, _ in rows]
    smooth = fit(trainer={"loss": {"type": "cross_entropy", "label_smoothing": 0.3}}).predict(texts).probabilities
    sharp = plain.predict(texts).probabilities
    assert smooth.max(1).mean() < sharp.max(1).mean() - 0.05  # targets of 0.8 / 0.1 / 0.1, not 1 / 0 / 0
    import torch

    from textsift.backends.torch.trainer import solver_targets

    with pytest.raises(ConfigError, match=r"trainer.loss: MSELoss cannot be minimised by the solver"):
        solver_targets(torch.nn.MSELoss(), np.array([0, 1, 2]), 3)
