from __future__ import annotations

import numpy as np
import pytest

from textsift.evaluation.metrics import classification_metrics, summary


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
