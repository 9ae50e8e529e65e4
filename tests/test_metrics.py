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


# The metrics are computed with numpy (importing sklearn.metrics costs every command about 1.2 s); scikit-learn
# stays their oracle. Random cases cover absent labels, labels never predicted, ties in scores and one-class data.
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6).flatmap(lambda k: st.tuples(
    st.just(k), st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1, max_size=40))))
def test_classification_metrics_match_scikit_learn(case):
    from sklearn import metrics as sk

    k, pairs = case
    y_true, y_pred = (np.array(v) for v in zip(*pairs))
    names = [f"l{i}" for i in range(k)]
    m = classification_metrics(y_true, y_pred, names, "t")
    labels = list(range(k))
    assert m["t/accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = sk.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)
        assert (m[f"t/{average}_precision"], m[f"t/{average}_recall"], m[f"t/{average}_f1"]) == pytest.approx((p, r, f), abs=1e-12)
    assert m["t/mcc"] == pytest.approx(sk.matthews_corrcoef(y_true, y_pred), abs=1e-12)
    p, r, f, s = sk.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
    for i, name in enumerate(names):
        assert (m[f"t/per_label/{name}/precision"], m[f"t/per_label/{name}/recall"], m[f"t/per_label/{name}/f1"],
                m[f"t/per_label/{name}/support"]) == pytest.approx((p[i], r[i], f[i], s[i]), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 8)), min_size=2, max_size=50))
def test_ranking_curves_match_scikit_learn(case):
    import warnings

    from sklearn import metrics as sk

    from textsift.evaluation import metrics as ours

    y = np.array([int(a) for a, _ in case])
    scores = np.array([b / 8 for _, b in case])  # few distinct values: many ties
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one-class cases: scikit-learn warns, both return the same arrays
        for theirs, mine in zip(sk.precision_recall_curve(y, scores), ours.precision_recall_curve(y, scores)):
            np.testing.assert_allclose(mine, theirs)
        for theirs, mine in zip(sk.roc_curve(y, scores), ours.roc_curve(y, scores)):
            np.testing.assert_allclose(mine, theirs)
        if y.any():
            assert ours.average_precision(y, scores) == pytest.approx(sk.average_precision_score(y, scores))
        if y.any() and not y.all():
            fpr, tpr, _ = ours.roc_curve(y, scores)
            assert ours.auc(fpr, tpr) == pytest.approx(sk.roc_auc_score(y, scores))


def test_commands_that_report_metrics_do_not_import_scikit_learn():
    import subprocess
    import sys

    code = ("import sys, textsift.evaluation.report, textsift.evaluation.calibration, textsift.evaluation.thresholds;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
