"""Losses and optimizers of the trainer settings, in jax and optax.

The config names torch's optimizers (``trainer.optimizer.type``); each has an optax equivalent with torch's exact
update rule, so a config trains alike on both backends: ``torch.optim:AdamW`` (decoupled weight decay), ``Adam``
and ``SGD`` (L2 weight decay, momentum, Nesterov), and ``textsift.training.optim:SparseAdamW``, whose lazy rows
(an embedding row's moments and weights change only when a batch uses it; ``sparse_eps``) apply to the bag model's
embedding table. As in torch, weight decay skips biases and norms (parameters of fewer than 2 dimensions) and the
sparse table. The learning-rate schedule is a factor (``SchedulerSpec.factor``) the step multiplies the update by.

Losses follow torch's definitions: cross-entropy with class weights (``sum w_y l / sum w_y``) and label smoothing,
and binary cross-entropy with positive weights for multilabel; rows of weight 0 (batch fillers) do not count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from textsift.errors import ConfigError
from textsift.training.losses import class_weights

SUPPORTED = {
    "torch.optim:AdamW": "adamw", "torch.optim:Adam": "adam", "torch.optim:SGD": "sgd",
    "textsift.training.optim:SparseAdamW": "sparse_adamw",
}


@dataclass(frozen=True)
class Loss:
    """A loss of (logits, labels, row weights) -> scalar, built from ``trainer.loss``."""

    kind: str  # "cross_entropy" or "bce"
    class_weight: np.ndarray | None = None
    label_smoothing: float = 0.0
    pos_weight: np.ndarray | None = None

    def __call__(self, logits: jax.Array, labels: jax.Array, rows: jax.Array) -> jax.Array:
        if self.kind == "bce":
            y = labels.astype(logits.dtype)
            log_p, log_not_p = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
            pw = 1.0 if self.pos_weight is None else jnp.asarray(self.pos_weight)
            per = -(pw * y * log_p + (1.0 - y) * log_not_p)  # torch's BCEWithLogitsLoss(pos_weight)
            return jnp.where(rows > 0, per.mean(axis=1) * rows, 0.0).sum() / jnp.maximum(rows.sum(), 1.0)
        log_p = jax.nn.log_softmax(logits, axis=-1)
        num = logits.shape[-1]
        w = jnp.ones(num, logits.dtype) if self.class_weight is None else jnp.asarray(self.class_weight, logits.dtype)
        nll = -jnp.take_along_axis(log_p, labels[:, None].astype(jnp.int32), axis=1)[:, 0]
        w_y = w[labels] * rows
        per = (1.0 - self.label_smoothing) * w_y * nll
        if self.label_smoothing:
            per = per + self.label_smoothing / num * rows * -(log_p * w[None, :]).sum(axis=1)
        return jnp.where(rows > 0, per, 0.0).sum() / jnp.maximum(w_y.sum(), 1e-12)  # fillers (weight 0) never count


def build_loss(spec: Any, label_counts: np.ndarray, num_examples: int) -> Loss:
    """The loss of ``trainer.loss`` (its registered settings), for the training label counts."""
    if spec.type == "cross_entropy":
        w = class_weights(label_counts, spec.class_weights, spec.beta)
        return Loss("cross_entropy", None if w is None else w.astype(np.float32), spec.label_smoothing)
    if spec.type == "bce":
        pw = None
        if spec.pos_weight == "balanced":
            pos = np.maximum(np.asarray(label_counts, np.float64), 1.0)
            pw = np.minimum((num_examples - pos) / pos, spec.max_pos_weight).astype(np.float32)
        return Loss("bce", pos_weight=pw)
    raise ConfigError(f"trainer.loss '{spec.type}' has no flax implementation (it has cross_entropy and bce). "
                      "Choose one of those, or set backend: torch.")


class AdamState(NamedTuple):
    count: jax.Array
    mu: Any
    nu: Any


def torch_adam(b1: float, b2: float, eps: float, lazy: bool = False) -> optax.GradientTransformation:
    """Adam as torch computes it: ``m / (sqrt(v) + eps) * sqrt(1 - b2^t) / (1 - b1^t)``.

    ``lazy``: rows (first axis) whose gradient is all zero keep their moments and get no update (SparseAdam)."""

    def init(params: Any) -> AdamState:
        zeros = jax.tree.map(jnp.zeros_like, params)
        return AdamState(jnp.zeros((), jnp.int32), zeros, jax.tree.map(jnp.zeros_like, params))

    def update(grads: Any, state: AdamState, params: Any = None) -> tuple[Any, AdamState]:
        t = state.count + 1
        scale = jnp.sqrt(1.0 - b2 ** t.astype(jnp.float32)) / (1.0 - b1 ** t.astype(jnp.float32))

        def one(g: jax.Array, m: jax.Array, v: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
            m_new = b1 * m + (1.0 - b1) * g
            v_new = b2 * v + (1.0 - b2) * g * g
            u = m_new / (jnp.sqrt(v_new) + eps) * scale
            if lazy:
                touched = jnp.any(g != 0, axis=tuple(range(1, g.ndim)), keepdims=True)
                return jnp.where(touched, u, 0.0), jnp.where(touched, m_new, m), jnp.where(touched, v_new, v)
            return u, m_new, v_new

        triples = jax.tree.map(one, grads, state.mu, state.nu)
        is_triple = lambda x: isinstance(x, tuple) and len(x) == 3 and not isinstance(x, AdamState)  # noqa: E731
        pick = lambda i: jax.tree.map(lambda x: x[i], triples, is_leaf=is_triple)  # noqa: E731
        return pick(0), AdamState(t, pick(1), pick(2))

    return optax.GradientTransformation(init, update)


def build_optimizer(spec: Any, grad_clip: float | None, labels: Callable[[Any], Any]) -> optax.GradientTransformation:
    """The optax transformation of ``trainer.optimizer`` and ``trainer.grad_clip``; its updates are ``-lr * ...``
    at the schedule's peak (the step multiplies them by the schedule's factor).

    ``labels``: parameters -> the same pytree with each leaf "decay", "no_decay" or "sparse" (the bag's table)."""
    kind = SUPPORTED.get(spec.type)
    if kind is None:
        raise ConfigError(f"trainer.optimizer.type '{spec.type}' has no flax equivalent; the flax backend has "
                          f"{', '.join(SUPPORTED)}. Choose one of them, or set backend: torch.")
    extra = dict(spec.model_extra or {})
    lr, wd = spec.lr, spec.weight_decay
    betas = tuple(extra.pop("betas", (0.9, 0.999)))
    eps = float(extra.pop("eps", 1e-8))
    if kind == "sgd":
        momentum, nesterov = float(extra.pop("momentum", 0.0)), bool(extra.pop("nesterov", False))
        extra.pop("dampening", None)
        branch: Callable[[float], optax.GradientTransformation] = lambda w: optax.chain(  # noqa: E731
            optax.add_decayed_weights(w), optax.trace(decay=momentum, nesterov=nesterov) if momentum else optax.identity(),
            optax.scale(-lr))
        branches = {"decay": branch(wd), "no_decay": branch(0.0), "sparse": branch(0.0)}
    elif kind == "adam":
        branch = lambda w: optax.chain(optax.add_decayed_weights(w), torch_adam(*betas, eps), optax.scale(-lr))  # noqa: E731
        branches = {"decay": branch(wd), "no_decay": branch(0.0), "sparse": branch(0.0)}
    else:  # adamw; sparse_adamw adds the lazy rows of the sparse table
        sparse_lr, sparse_eps = extra.pop("sparse_lr", None), extra.pop("sparse_eps", None)
        decay = optax.chain(torch_adam(*betas, eps), optax.add_decayed_weights(wd), optax.scale(-lr))
        branches = {"decay": decay, "no_decay": optax.chain(torch_adam(*betas, eps), optax.scale(-lr))}
        if kind == "sparse_adamw" and sparse_lr is not None:  # plain SGD on the used rows, as torch's SparseAdamW
            branches["sparse"] = optax.scale(-float(sparse_lr))
        elif kind == "sparse_adamw":
            branches["sparse"] = optax.chain(torch_adam(*betas, float(sparse_eps) if sparse_eps is not None else eps, lazy=True),
                                             optax.scale(-lr))
        else:
            branches["sparse"] = branches["no_decay"]
    for key in ("foreach", "fused", "capturable", "differentiable", "maximize", "amsgrad"):
        if extra.get(key) in (None, False):  # torch's implementation switches, off: nothing to do here
            extra.pop(key, None)
    if extra:
        raise ConfigError(f"trainer.optimizer: the flax backend does not take {', '.join(sorted(extra))} for {spec.type}. "
                          "Remove it, or set backend: torch.")
    core = optax.multi_transform(branches, labels)
    return optax.chain(optax.clip_by_global_norm(grad_clip), core) if grad_clip is not None else core


class LazyRows:
    """SparseAdamW on an embedding table, row by row: the rows a step uses (``rows``, gathered by the caller) get
    torch's sparse update (``sparse_lr``: plain SGD; else lazy Adam with ``sparse_eps``); the others keep their
    weights and moments. State: ``{"count", "moments"}``: ``moments [rows, 2, dim]`` holds each row's ``m`` and ``v``
    side by side, so a step reads and writes them in one gather and one scatter (none without ``sparse_lr``)."""

    def __init__(self, spec: Any) -> None:
        extra = dict(spec.model_extra or {})
        self.lr = spec.lr
        self.b1, self.b2 = tuple(extra.get("betas", (0.9, 0.999)))
        self.sparse_lr = extra.get("sparse_lr")
        sparse_eps = extra.get("sparse_eps")
        self.eps = float(sparse_eps if sparse_eps is not None else extra.get("eps", 1e-8))

    @staticmethod
    def applies(spec: Any) -> bool:
        return SUPPORTED.get(spec.type) == "sparse_adamw"

    def init(self, table: jax.Array) -> dict[str, jax.Array]:
        state = {"count": jnp.zeros((), jnp.int32)}
        if self.sparse_lr is None:
            state["moments"] = jnp.zeros((table.shape[0], 2, *table.shape[1:]), table.dtype)
        return state

    def rows_after(self, current: jax.Array, moments: jax.Array | None, grad: jax.Array, used: jax.Array,
                   count: jax.Array, factor: jax.Array) -> dict[str, jax.Array]:
        """The new values of a step's rows: ``{"table": ...}`` and, for Adam, ``"moments"``. ``current``: the
        rows' weights, ``moments [rows, 2, dim]``: their ``m`` and ``v``, ``grad``: their gradient, ``used [rows]``: the rows the
        batch used (the coalesced indices of torch's sparse gradient): only they change, as in torch, whatever their
        gradient. ``count``: the step number after this step; ``factor``: the schedule's."""
        touched = used[:, None]
        if self.sparse_lr is not None:
            return {"table": jnp.where(touched, current - float(self.sparse_lr) * factor * grad, current)}
        t = count.astype(jnp.float32)
        b1, b2 = self.b1, self.b2
        assert moments is not None
        m, v = moments[:, 0], moments[:, 1]
        m_new = jnp.where(touched, b1 * m + (1.0 - b1) * grad, m)
        v_new = jnp.where(touched, b2 * v + (1.0 - b2) * grad * grad, v)
        step_size = self.lr * factor * jnp.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        table = jnp.where(touched, current - step_size * m_new / (jnp.sqrt(v_new) + self.eps), current)
        return {"table": table, "moments": jnp.stack([m_new, v_new], axis=1)}

    def update(self, table: jax.Array, rows: jax.Array, current: jax.Array, grad: jax.Array, used: jax.Array,
               state: dict[str, jax.Array], factor: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """``table`` after the update of ``rows`` (sorted; fillers out of bounds, which read zeros and are not
        written), whose weights are ``current`` (see :meth:`rows_after`), and the new state, in one function."""
        count = state["count"] + 1
        moments = read_rows(state["moments"], rows) if "moments" in state else None
        new = self.rows_after(current, moments, grad, used, count, factor)
        if moments is None:
            return write_rows(table, rows, new["table"]), {"count": count}
        return write_rows(table, rows, new["table"]), {"count": count, "moments": write_rows(state["moments"], rows, new["moments"])}


def read_rows(table: jax.Array, rows: jax.Array) -> jax.Array:
    """``table[rows]`` for sorted ``rows`` whose fillers lie out of bounds (they read zeros)."""
    return table.at[rows].get(mode="fill", fill_value=0.0, indices_are_sorted=True)


def write_rows(table: jax.Array, rows: jax.Array, values: jax.Array) -> jax.Array:
    """``table`` with ``rows`` (sorted, fillers out of bounds: not written) set to ``values``."""
    return table.at[rows].set(values, mode="drop", indices_are_sorted=True)
