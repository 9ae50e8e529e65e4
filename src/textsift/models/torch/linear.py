"""TF-IDF + logistic regression as a first-class model: the strong linear baseline, fitted to convergence.

The features are the tokenizer's n-gram ids (by default hashed word 1-2 grams and character n-grams of
words, rare ones dropped), weighted as scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` does: tf is
``1 + log(count)``, idf ``log((1 + n) / (1 + df)) + 1`` fitted on the training texts, each row L2-normalised.
The network computes these weights itself from the ids (one implementation, used for fitting and for
prediction), then a linear layer. Fitting hands the same features, as a sparse matrix, to scikit-learn's
L-BFGS logistic regression (multinomial; multilabel: one binary problem per label) and copies its
coefficients into the layer: the model directory holds safetensors like every other model, never a pickle.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from textsift import registry
from textsift.models.base import ModelSpec
from textsift.models.torch.heads import TorchClassifier

logger = logging.getLogger(__name__)


@registry.models.register("linear")
class LinearSpec(ModelSpec):
    """TF-IDF features into an L2-regularised logistic regression, fitted by L-BFGS to convergence."""

    type: Literal["linear"] = "linear"
    input_format: ClassVar[str] = "bag"
    recommended: ClassVar[dict[str, Any]] = {
        "tokenizer": {"type": "hashed_ngrams", "word_ngrams": 2, "char_ngrams": [2, 5], "char_space": "separate", "min_count": 2,
                      "max_features": 1_000_000},
        "trainer": {"epochs": 1, "batch_size": 512, "early_stopping": None},
    }
    C: float = Field(10.0, gt=0, description="Inverse strength of the L2 penalty (scikit-learn's C): larger fits the training data closer.")
    sublinear_tf: bool = Field(True, description="Term frequency as 1 + log(count) instead of the count.")
    class_weight: Literal["none", "balanced"] = Field("none", description="balanced: weight classes inversely to their frequency.")
    max_iter: int = Field(1000, ge=1, description="Most L-BFGS iterations (a warning says if it stopped before converging).")
    tol: float = Field(1e-4, gt=0, description="Convergence tolerance of the solver.")

    @model_validator(mode="after")
    def _linear_head(self) -> "LinearSpec":
        if self.head.hidden_dims:
            raise ValueError("model.head.hidden_dims: the linear model has no hidden layers; use [] (or model: bag for a network)")
        return self

    def auto_batch_size(self, num_examples: int, mean_length: float) -> int:
        return 512

    def build(self, *, vocab_size: int, num_labels: int, tokenizer: Any = None) -> "LinearClassifier":
        offset = getattr(tokenizer, "char_offset", None) if tokenizer is not None and getattr(tokenizer, "fitted", False) else None
        first_char_row = tokenizer.first_row_at_or_above(offset) if offset is not None else vocab_size
        return LinearClassifier(self, vocab_size, num_labels, first_char_row)


class LinearClassifier(TorchClassifier):
    input_format = "bag"

    def __init__(self, spec: LinearSpec, vocab_size: int, num_labels: int, first_char_row: int | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.vocab_size = vocab_size
        # features from this row on are character n-grams: word and character features are L2-normalised each on
        # their own (as scikit-learn's two TfidfVectorizers side by side), so neither kind drowns the other
        self.first_char_row = vocab_size if first_char_row is None else first_char_row
        self.register_buffer("idf", torch.zeros(vocab_size))
        self.weight = nn.Parameter(torch.zeros(vocab_size, num_labels))
        self.bias = nn.Parameter(torch.zeros(num_labels))

    def features(self, ids: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """TF-IDF weights as (row, feature id, weight) triples, rows in order, each row L2-normalised."""
        n = offsets.numel()
        lengths = torch.diff(offsets, append=torch.tensor([ids.numel()], device=ids.device))
        row = torch.repeat_interleave(torch.arange(n, device=ids.device), lengths)
        keys, counts = torch.unique(row * self.vocab_size + ids, return_counts=True)  # sorted: grouped by row
        rows, feats = keys // self.vocab_size, keys % self.vocab_size
        tf = 1.0 + torch.log(counts.float()) if self.spec.sublinear_tf else counts.float()
        weights = tf * self.idf[feats]
        block = rows * 2 + (feats >= self.first_char_row).long()  # (row, kind): words and character n-grams apart
        norms = torch.zeros(2 * n, device=ids.device).index_add_(0, block, weights * weights).sqrt()
        return rows, feats, weights / norms.clamp_min(1e-12)[block]

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        rows, feats, weights = self.features(batch["ids"], batch["offsets"])
        n = batch["offsets"].numel()
        starts = torch.zeros(n, dtype=torch.long, device=feats.device)
        if n > 1:
            starts[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)[:-1]
        pooled = nn.functional.embedding_bag(feats, self.weight, starts, mode="sum", per_sample_weights=weights)
        return pooled + self.bias

    # -- fitting ------------------------------------------------------------------------------------
    def solve(self, ids: Any, labels: np.ndarray) -> dict[str, Any]:
        """Fit idf and the logistic regression on the training ids (a Ragged) and labels; returns what it did."""
        from scipy.sparse import csr_matrix
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        t0 = time.perf_counter()
        values = torch.from_numpy(np.ascontiguousarray(ids.values))
        offsets = torch.from_numpy(np.ascontiguousarray(ids.offsets[:-1]))
        n = len(ids)
        with torch.no_grad():
            self.idf.fill_(1.0)
            rows, feats, _ = self.features(values, offsets)
            df = torch.bincount(feats, minlength=self.vocab_size).float()
            self.idf.copy_(torch.log((1.0 + n) / (1.0 + df)) + 1.0)
            self.idf[0] = 0.0  # the padding id carries nothing
            rows, feats, weights = self.features(values, offsets)
        x = csr_matrix((weights.numpy().astype(np.float64), (rows.numpy(), feats.numpy())), shape=(n, self.vocab_size))
        x.sum_duplicates()
        spec = self.spec
        make = lambda: LogisticRegression(  # noqa: E731
            C=spec.C, max_iter=spec.max_iter, tol=spec.tol, solver="lbfgs",
            class_weight="balanced" if spec.class_weight == "balanced" else None,
        )
        import warnings

        iterations, unconverged = 0, 0
        weight = np.zeros((self.vocab_size, self.bias.numel()), np.float64)
        bias = np.zeros(self.bias.numel(), np.float64)
        from threadpoolctl import threadpool_limits

        # L-BFGS's vector updates are small BLAS calls: OpenBLAS threads only contend on them (measured 5x slower)
        with warnings.catch_warnings(record=True) as caught, threadpool_limits(1, user_api="blas"):
            warnings.simplefilter("always", ConvergenceWarning)
            if labels.ndim == 2:  # multilabel: one binary problem per label
                for j in range(labels.shape[1]):
                    y = labels[:, j].astype(np.int64)
                    if y.min() == y.max():  # a label always (or never) present in training: a constant decision
                        bias[j] = 10.0 if y[0] else -10.0
                        continue
                    clf = make().fit(x, y)
                    weight[:, j], bias[j] = clf.coef_[0], clf.intercept_[0]
                    iterations += int(np.max(clf.n_iter_))
            else:
                clf = make().fit(x, labels)
                classes = clf.classes_.astype(np.int64)
                if len(classes) == 2:  # scikit-learn fits one vector z; softmax([-z/2, z/2]) = sigmoid(z)
                    weight[:, classes[1]], weight[:, classes[0]] = clf.coef_[0] / 2, -clf.coef_[0] / 2
                    bias[classes[1]], bias[classes[0]] = clf.intercept_[0] / 2, -clf.intercept_[0] / 2
                else:
                    weight[:, classes] = clf.coef_.T
                    bias[classes] = clf.intercept_
                missing = sorted(set(range(self.bias.numel())) - set(classes.tolist()))
                bias[missing] = -30.0  # a label with no training example is never predicted (warned about at load)
                iterations = int(np.max(clf.n_iter_))
        unconverged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        if unconverged:
            logger.warning("The solver stopped at model.max_iter=%d iterations before converging; raise it (or lower model.C).",
                           spec.max_iter)
        with torch.no_grad():
            self.weight.copy_(torch.from_numpy(weight).float())
            self.bias.copy_(torch.from_numpy(bias).float())
        seconds = time.perf_counter() - t0
        logger.info("Linear model: %d examples x %d features (%d non-zeros), %d L-BFGS iterations, %.1f s",
                    n, self.vocab_size - 1, x.nnz, iterations, seconds)
        return {"iterations": iterations, "converged": not unconverged, "seconds": seconds, "nnz": int(x.nnz)}
