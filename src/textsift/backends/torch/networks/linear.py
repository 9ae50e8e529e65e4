"""TF-IDF + logistic regression as a first-class model: the strong linear baseline, fitted to convergence.

The features are the tokenizer's n-gram ids (by default hashed word 1-2 grams and character n-grams of
words, rare ones dropped), weighted as scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` does: tf is
``1 + log(count)``, idf ``log((1 + n) / (1 + df)) + 1`` fitted on the training texts, each row L2-normalised.
The network computes these weights itself from the ids (one implementation, used for fitting and for
prediction), then a linear layer. Fitting hands the same features, as a sparse matrix, to
:func:`logistic_regression` (scikit-learn's L-BFGS objective, minimised by scipy: multinomial; binary and
multilabel: a sigmoid per label) and copies the coefficients into the layer: the model directory holds
safetensors like every other model, never a pickle.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from textsift import registry
from textsift.models.base import ModelSpec
from textsift.backends.torch.networks.heads import TorchClassifier

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
        norms = torch.zeros(2 * n, device=rows.device).index_add_(0, block, weights * weights).sqrt()
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
    def solve(self, ids: Any, labels: np.ndarray, probabilities: np.ndarray | None = None,
              sample_weight: np.ndarray | None = None) -> dict[str, Any]:
        """Fit idf and the logistic regression on the training ids (a Ragged) and labels; returns what it did.

        ``probabilities`` (single-label: a distribution over the labels per example: smoothed labels, a teacher's soft
        labels for a distillation student): fitted instead of the labels (the cross-entropy to them; ``labels`` then
        only weigh classes for ``class_weight: balanced``). ``sample_weight``: per example (multilabel: per example and
        label), multiplied into ``class_weight``'s (the configured loss's class weights, see the trainer)."""
        from scipy.sparse import csr_matrix

        t0 = time.perf_counter()
        n = len(ids)
        # the term counts of each row as scipy's canonical CSR (each row's ids sorted and summed in C, row by row:
        # 2.5x torch.unique over (row, id) keys); the same weights as features() computes, from one pass
        index = np.int32 if len(ids.values) < 2**31 and self.vocab_size < 2**31 else np.int64
        x = csr_matrix((np.ones(len(ids.values), np.float64), ids.values.astype(index), ids.offsets.astype(index)),
                       shape=(n, self.vocab_size))
        x.sum_duplicates()
        feats = x.indices
        df = np.bincount(feats, minlength=self.vocab_size)
        idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
        idf[0] = 0.0  # the padding id carries nothing
        idf = idf.astype(np.float32)  # the buffer's precision: the weights are the ones prediction computes
        with torch.no_grad():
            self.idf.copy_(torch.from_numpy(idf))
        counts = x.data.astype(np.float32)
        tf = 1.0 + np.log(counts) if self.spec.sublinear_tf else counts
        weights = tf * idf[feats]
        rows = np.repeat(np.arange(n), np.diff(x.indptr))
        block = rows * 2 + (feats >= self.first_char_row)  # (row, kind): words and character n-grams apart
        norms = np.sqrt(np.bincount(block, weights * weights, minlength=2 * n)).astype(np.float32)
        x.data = (weights / np.maximum(norms[block], 1e-12)).astype(np.float64)
        spec = self.spec
        num_labels = self.bias.numel()
        weight = np.zeros((self.vocab_size, num_labels))
        def weights(own: np.ndarray | None) -> np.ndarray | None:  # the model's class weights times the loss's
            if sample_weight is None:
                return own
            given = np.asarray(sample_weight, np.float64)
            if given.ndim == 1:  # a weighted mean, as torch's weighted cross-entropy: the weights' scale is no setting
                given = given * (len(given) / max(float(given.sum()), 1e-300))
            return given if own is None else own * (given if own.ndim == given.ndim else given[:, None])

        if probabilities is not None:  # soft targets: the log-loss is the cross-entropy to them
            y = np.asarray(probabilities, np.float64)
            if y.shape != (n, num_labels):
                raise ValueError(f"solve: probabilities of shape {y.shape}, expected {(n, num_labels)}")
            sw = weights(_sample_weights(labels, spec.class_weight))
            if num_labels == 2:  # one vector z, as for hard labels: softmax([-z/2, z/2]) = sigmoid(z)
                fitted = logistic_regression(x, y[:, 1:], spec.C, "binary", sw, spec.max_iter, spec.tol)
                weight = np.concatenate([-fitted.weight / 2, fitted.weight / 2], axis=1)
                bias = np.concatenate([-fitted.bias / 2, fitted.bias / 2])
            else:
                fitted = logistic_regression(x, y, spec.C, "multinomial", sw, spec.max_iter, spec.tol)
                weight, bias = fitted.weight, fitted.bias
        elif labels.ndim == 2:  # multilabel: one binary problem per label, solved side by side
            y = labels.astype(np.float64)
            varies = y.min(axis=0) < y.max(axis=0)  # a label always (or never) present gets a constant decision
            sw = weights(_sample_weights(labels, spec.class_weight))
            fitted = logistic_regression(x, y[:, varies], spec.C, "binary", None if sw is None else sw[:, varies],
                                         spec.max_iter, spec.tol)
            bias = np.where(y[0] > 0, 10.0, -10.0)
            weight[:, varies], bias[varies] = fitted.weight, fitted.bias
        else:
            present = np.unique(labels)
            if len(present) == 2:  # one vector z, as scikit-learn fits it; softmax([-z/2, z/2]) = sigmoid(z)
                y = (labels == present[1]).astype(np.float64)[:, None]
                fitted = logistic_regression(x, y, spec.C, "binary", weights(_sample_weights(labels, spec.class_weight)),
                                             spec.max_iter, spec.tol)
                columns = np.concatenate([-fitted.weight / 2, fitted.weight / 2], axis=1)
                intercepts = np.concatenate([-fitted.bias / 2, fitted.bias / 2])
            else:
                index = np.searchsorted(present, labels)
                y = np.zeros((n, len(present)))
                y[np.arange(n), index] = 1.0
                fitted = logistic_regression(x, y, spec.C, "multinomial", weights(_sample_weights(labels, spec.class_weight)),
                                             spec.max_iter, spec.tol)
                columns, intercepts = fitted.weight, fitted.bias
            bias = np.full(num_labels, -30.0)  # a label with no training example is never predicted (warned about at load)
            weight[:, present], bias[present] = columns, intercepts
        iterations, converged = fitted.iterations, fitted.converged
        # the training loss as the other models log it: per example, and per label for multilabel (BCE's mean)
        loss = fitted.loss / max(int(labels.shape[1]), 1) if labels.ndim == 2 else fitted.loss
        if not converged:
            logger.warning("The solver stopped at model.max_iter=%d iterations before converging; raise it (or lower model.C).",
                           spec.max_iter)
        with torch.no_grad():
            self.weight.copy_(torch.from_numpy(weight).float())
            self.bias.copy_(torch.from_numpy(bias).float())
        seconds = time.perf_counter() - t0
        logger.info("Linear model: %d examples x %d features (%d non-zeros), %d L-BFGS iterations, %.1f s",
                    n, self.vocab_size - 1, x.nnz, iterations, seconds)
        return {"iterations": iterations, "converged": converged, "seconds": seconds, "nnz": int(x.nnz), "loss": loss}


def _sample_weights(labels: np.ndarray, class_weight: str) -> np.ndarray | None:
    """balanced: each example weighs n / (classes x its class's count), as scikit-learn's class_weight='balanced'."""
    if class_weight != "balanced":
        return None
    if labels.ndim == 2:  # multilabel: positives and negatives of each label balanced (one column per label)
        pos = labels.mean(axis=0).clip(1e-12, 1 - 1e-12)
        return np.where(labels > 0, 0.5 / pos, 0.5 / (1 - pos))
    classes, index, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return (len(labels) / (len(classes) * counts))[index]


@dataclass
class Fitted:
    weight: np.ndarray  # features x outputs
    bias: np.ndarray
    iterations: int
    converged: bool
    loss: float = 0.0  # the mean log-loss on the training data at the solution (the penalty left out)


def logistic_regression(
    x: Any, y: np.ndarray, C: float, kind: Literal["multinomial", "binary"], sample_weight: np.ndarray | None,
    max_iter: int, tol: float,
) -> Fitted:
    """L2-regularised logistic regression by L-BFGS: scikit-learn's ``LogisticRegression(solver="lbfgs")`` objective.

    The loss is the weighted mean log-loss plus ``|W|^2 / (2 C n)`` (intercepts not penalised), minimised by
    ``torch.optim.LBFGS`` (strong Wolfe line search) until the largest gradient entry is below ``tol``, scikit-learn's
    stopping rule, so the coefficients are the ones scikit-learn finds (tests hold them to it). ``multinomial``: one
    softmax over the columns of ``y`` (one-hot); ``binary``: an independent sigmoid per column (a binary task, or
    multilabel). The two sparse products of each step run as torch CSR products (MKL: 3-4x scipy's on one core) in
    float32, or float64 when ``tol`` asks for more than float32 resolves (below 1e-6). Written here rather than
    calling scikit-learn, whose import alone costs a zero-config run about 2 s, and whose L-BFGS (scipy's) spent as
    long on its own bookkeeping as on the products.
    """
    import warnings

    from scipy.sparse import csr_matrix

    n, d = x.shape
    k = y.shape[1]
    if k == 0:  # nothing to fit (every label constant)
        return Fitted(np.zeros((d, 0)), np.zeros(0), 0, True, 0.0)
    dtype = torch.float64 if tol < 1e-6 else torch.float32
    x = csr_matrix(x)

    def as_torch(m: Any) -> torch.Tensor:
        with warnings.catch_warnings():  # "sparse CSR support is in beta": the product used here is long stable
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int32)), torch.from_numpy(m.indices.astype(np.int32)),
                                           torch.from_numpy(m.data).to(dtype), size=m.shape)

    xs, xts = as_torch(x), as_torch(x.T.tocsr())  # X^T as its own CSR: the gradient's product runs over rows too
    yt = torch.from_numpy(np.asarray(y)).to(dtype)
    sw = torch.ones(n, 1, dtype=dtype) if sample_weight is None else torch.from_numpy(np.asarray(sample_weight, np.float64).reshape(n, -1)).to(dtype)
    total = float(sw.sum()) if sw.shape[1] == 1 else n  # scikit-learn divides by the sum of the sample weights
    alpha = 1.0 / (C * total)
    data_loss = [0.0]

    def loss_grad(params: torch.Tensor) -> tuple[float, torch.Tensor]:
        w, b = params[: d * k].view(d, k), params[d * k:]
        z = xs @ w + b
        if kind == "multinomial":
            lse = torch.logsumexp(z, 1, keepdim=True)
            loss = (sw * (lse - (z * yt).sum(1, keepdim=True))).sum() / total
            residual = sw * (torch.exp(z - lse) - yt) / total
        else:
            loss = (sw * (nn.functional.softplus(z) - yt * z)).sum() / total
            residual = sw * (torch.sigmoid(z) - yt) / total
        data_loss[0] = float(loss)
        grad = torch.cat([(xts @ residual + alpha * w).reshape(-1), residual.sum(0)])
        return data_loss[0] + 0.5 * alpha * float((w * w).sum()), grad

    # one thread, whatever the process uses: the sums of a product split over threads round differently, and the
    # solver's path (iterations, the point where it stops) followed them: the same data gave different models on
    # one and two threads (sst2 test accuracy 0.8154 vs 0.8211). One thread is also as fast: the products are
    # memory-bound, and on a loaded 2-core machine two threads ran them 3-20x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            params, iterations, converged = lbfgs(loss_grad, torch.zeros(d * k + k, dtype=dtype), max_iter, tol)
            loss_grad(params)  # the data loss at the solution
    finally:
        torch.set_num_threads(threads)
    weight = params[: d * k].view(d, k).double().numpy()
    return Fitted(weight, params[d * k:].double().numpy(), iterations, converged, data_loss[0])


def lbfgs(
    loss_grad: Any, x: torch.Tensor, max_iter: int, tol: float, history: int = 10,
) -> tuple[torch.Tensor, int, bool]:
    """Minimise a smooth convex function by L-BFGS (Nocedal & Wright, algorithms 7.4 and 7.5).

    ``loss_grad(x)`` returns the loss and its gradient. Stops when the largest gradient entry is at most ``tol``
    (converged), after ``max_iter`` iterations (not converged), or when no step lowers the loss any more: the
    tensors' precision is spent (converged as far as it resolves). The line search backtracks from the
    quasi-Newton step (quadratic interpolation; Armijo's sufficient decrease, or Hager and Zhang's approximate
    Wolfe conditions where the loss no longer resolves decreases); on a strictly convex loss (an L2 penalty) every
    step keeps the curvature pairs positive. Written out rather than ``torch.optim.LBFGS``: building
    any torch optimizer imports ``torch._dynamo`` (about 1.5 s of a run that needs seconds).
    """
    f, g = loss_grad(x)
    rounding = 64 * torch.finfo(x.dtype).eps  # what the loss's last digits are worth, relative to the loss
    pairs: list[tuple[torch.Tensor, torch.Tensor, float]] = []
    flat = 0
    for iteration in range(max_iter):
        if float(g.abs().max()) <= tol:
            return x, iteration, True
        q = g.clone()
        alphas = []
        for s, y, rho in reversed(pairs):
            a = rho * float(s @ q)
            q.add_(y, alpha=-a)
            alphas.append(a)
        if pairs:
            s, y, _ = pairs[-1]
            q.mul_(float(s @ y) / float(y @ y))
        else:  # the first step: the steepest descent, scaled to a unit L1 length at most
            q.mul_(min(1.0, 1.0 / float(g.abs().sum())))
        for (s, y, rho), a in zip(pairs, reversed(alphas)):
            q.add_(s, alpha=a - rho * float(y @ q))
        direction = q.neg_()
        slope = float(g @ direction)
        if slope >= 0:  # not a descent direction (rounding): start the memory again from the gradient
            pairs.clear()
            direction, slope = -g, -float(g @ g)
        step = 1.0
        while True:
            x_new = x + step * direction
            f_new, g_new = loss_grad(x_new)
            if f_new <= f + 1e-4 * step * slope:  # Armijo's sufficient decrease
                break
            # near the minimum the loss stops resolving decreases (float32) while its gradient still does: Hager and
            # Zhang's approximate Wolfe conditions accept a step whose slope has flattened and whose loss is no worse
            # than rounding
            slope_new = float(g_new @ direction)
            if f_new <= f + rounding * max(abs(f), 1.0) and 0.9 * slope <= slope_new <= -0.8 * slope:
                break
            # the minimum of the quadratic through f, the slope and f_new, kept within [0.1, 0.5] of the step
            curvature = f_new - f - slope * step
            step *= min(0.5, max(0.1, -slope * step / (2 * curvature))) if curvature > 0 else 0.5
            if step < 1e-10:
                return x, iteration, True  # no step lowers the loss: as converged as the precision allows
        s, y = x_new - x, g_new - g
        sy = float(s @ y)
        if sy > 1e-12:
            pairs.append((s, y, 1.0 / sy))
            if len(pairs) > history:
                pairs.pop(0)
        # a step that lowers the loss by less than its rounding, three times running: the precision is spent
        flat = flat + 1 if f - f_new <= torch.finfo(x.dtype).eps * max(abs(f), 1.0) else 0
        x, f, g = x_new, f_new, g_new
        if flat == 3:
            return x, iteration + 1, True
    return x, max_iter, float(g.abs().max()) <= tol
