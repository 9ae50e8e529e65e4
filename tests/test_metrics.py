from __future__ import annotations

import numpy as np
import pytest

from textsift.evaluation.metrics import classification_metrics, multilabel_metrics, summary


def test_metrics_against_hand_computed_values():
    # labels: a=0, b=1, c=2
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"], "test")
    assert m["test/accuracy"] == pytest.approx(4 / 6)
    # per label: a: P=2/2 R=2/3; b: P=1/2 R=1/2; c: P=1/2 R=1/1
    assert m["test/per_label/a/precision"] == pytest.approx(1.0)
    assert m["test/per_label/a/recall"] == pytest.approx(2 / 3)
    assert m["test/per_label/a/f1"] == pytest.approx(0.8)
    assert m["test/per_label/c/f1"] == pytest.approx(2 / 3)
    assert m["test/per_label/b/support"] == 2.0
    assert m["test/macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["test/micro_f1"] == pytest.approx(4 / 6)
    assert m["test/weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert -1.0 <= m["test/mcc"] <= 1.0 and m["test/mcc"] > 0.4


def test_keys_are_flat_and_stable():
    m = classification_metrics(np.array([0, 1]), np.array([0, 1]), ["joy", "anger"], "val")
    assert set(summary(m, "val")) == {
        "val/accuracy", "val/mcc",
        *(f"val/{avg}_{kind}" for avg in ("macro", "micro", "weighted") for kind in ("precision", "recall", "f1")),
    }
    assert "val/per_label/joy/f1" in m and m["val/mcc"] == 1.0


def test_a_label_never_predicted_scores_zero_without_warnings():
    m = classification_metrics(np.array([0, 1, 1]), np.array([1, 1, 1]), ["x", "y", "z"], "t")
    assert m["t/per_label/x/precision"] == 0.0 and m["t/per_label/z/support"] == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_multilabel_metrics_match_scikit_learn_on_random_label_sets(seed):
    from sklearn import metrics as sk

    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(5, 60)), int(rng.integers(2, 7))
    density = rng.uniform(0.1, 0.7, size=k)  # labels from rare to common
    y_true = (rng.random((n, k)) < density).astype(int)
    y_pred = np.where(rng.random((n, k)) < 0.7, y_true, 1 - y_true)  # right about 70% of the time
    y_true[0] = 0  # an example without labels, one without predictions, a label never predicted
    y_pred[1] = 0
    y_pred[:, -1] = 0
    names = [f"l{i}" for i in range(k)]
    m = multilabel_metrics(y_true, y_pred, names, "t")
    for average in ("micro", "macro", "weighted", "samples"):
        for kind, fn in (("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)):
            expected = fn(y_true, y_pred, average=average, zero_division=0)
            assert m[f"t/{average}_{kind}"] == pytest.approx(expected, abs=1e-12), (average, kind)
    assert m["t/accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))  # subset accuracy
    assert m["t/hamming_loss"] == pytest.approx(sk.hamming_loss(y_true, y_pred))
    p, r, f, s = sk.precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    for i, name in enumerate(names):
        assert (m[f"t/per_label/{name}/precision"], m[f"t/per_label/{name}/recall"], m[f"t/per_label/{name}/f1"],
                m[f"t/per_label/{name}/support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    assert m["t/label_cardinality"] == pytest.approx(y_true.sum() / n)
    assert m["t/predicted_cardinality"] == pytest.approx(y_pred.sum() / n)
