"""Registered losses."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from textsift import registry
from textsift.config.spec import Spec


class LossSpec(Spec):
    def build(self, label_counts: np.ndarray, num_examples: int | None = None) -> nn.Module:
        """``label_counts``: training examples per label (for multilabel: examples having each label)."""
        raise NotImplementedError


def class_weights(counts: np.ndarray, scheme: str, beta: float = 0.999) -> np.ndarray | None:
    """Per-class loss weights from the training label distribution, normalised to mean 1.

    ``balanced``: inverse frequency (scikit-learn's ``class_weight='balanced'``);
    ``effective_number``: (1 - beta) / (1 - beta**n), Cui et al. 2019, "Class-Balanced Loss".
    """
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    if scheme == "none":
        return None
    if scheme == "balanced":
        w = counts.sum() / (len(counts) * counts)
    elif scheme == "effective_number":
        w = (1.0 - beta) / (1.0 - np.power(beta, counts))
    else:  # pragma: no cover - validated by the Literal
        raise ValueError(scheme)
    return w * len(w) / w.sum()


@registry.losses.register("cross_entropy")
class CrossEntropySpec(LossSpec):
    """Softmax cross-entropy, with optional label smoothing and class-balanced weights."""

    type: Literal["cross_entropy"] = "cross_entropy"
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    class_weights: Literal["none", "balanced", "effective_number"] = Field(
        "none", description="Weight classes by inverse frequency ('balanced') or effective number of samples."
    )
    beta: float = Field(0.999, gt=0.0, lt=1.0, description="beta of the effective-number weighting.")

    def build(self, label_counts: np.ndarray, num_examples: int | None = None) -> nn.Module:
        w = class_weights(label_counts, self.class_weights, self.beta)
        weight = torch.tensor(w, dtype=torch.float32) if w is not None else None
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=self.label_smoothing)


@registry.losses.register("bce")
class BinaryCrossEntropySpec(LossSpec):
    """Sigmoid binary cross-entropy per label, for multilabel tasks; optional positive weights."""

    type: Literal["bce"] = "bce"
    pos_weight: Literal["none", "balanced"] = Field(
        "none", description="'balanced': weigh each label's positives by (negatives / positives), capped by max_pos_weight."
    )
    max_pos_weight: float = Field(10.0, gt=0.0, description="Cap of the balanced positive weight (rare labels).")

    def build(self, label_counts: np.ndarray, num_examples: int | None = None) -> nn.Module:
        weight = None
        if self.pos_weight == "balanced":
            if num_examples is None:
                raise ValueError("pos_weight 'balanced' needs the number of training examples")
            pos = np.maximum(np.asarray(label_counts, np.float64), 1.0)
            weight = torch.tensor(np.minimum((num_examples - pos) / pos, self.max_pos_weight), dtype=torch.float32)
        return nn.BCEWithLogitsLoss(pos_weight=weight)
