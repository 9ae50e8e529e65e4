"""The Flax NNX networks of the backend-neutral model specs: bag, cnn, lstm and gru.

Each network maps a padded batch (``ids [batch, width]`` int32 padded with 0, ``lengths [batch]``) to logits
``[batch, labels]``. ``key``: a PRNG key for dropout in training; ``None`` at evaluation (no dropout). Padding
never changes a text's result: embeddings, convolution outputs and recurrent states are masked by length, so a
text gives the same logits however wide the bucket it is padded into (see :mod:`textsift.backends.flax.shapes`).

A spec the backend has no network for is a :class:`~textsift.errors.ConfigError` naming ``backend``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from textsift.errors import ConfigError

Batch = dict[str, jax.Array]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu, "gelu": lambda x: jax.nn.gelu(x, approximate=False), "silu": jax.nn.silu, "elu": jax.nn.elu,
    "tanh": jnp.tanh, "leaky_relu": lambda x: jax.nn.leaky_relu(x, 0.01),
}


def _keys(key: jax.Array | None, n: int) -> list[jax.Array | None]:
    return [None] * n if key is None else list(jax.random.split(key, n))


def _dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def _mask(batch: Batch) -> jax.Array:
    """``[batch, width]``: True at a text's own positions, False at padding."""
    ids = batch["ids"]
    return jnp.arange(ids.shape[1])[None, :] < batch["lengths"][:, None]


def _at_least_one(batch: Batch) -> Batch:
    """The batch with lengths of at least 1 (an empty text, or a batch's filler row, reads the padding id once, as
    torch's packed sequences do), so that pooling over a sequence always has a position."""
    return {**batch, "lengths": jnp.maximum(batch["lengths"], 1)}


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], bound: float) -> nnx.Param:
    """A parameter drawn uniformly in +-bound with numpy (no per-initialiser XLA compilation)."""
    return nnx.Param(jnp.asarray(rng.uniform(-bound, bound, shape).astype(np.float32)))


class Dense(nnx.Module):
    """``x @ kernel + bias``, initialised as torch's nn.Linear (uniform in +-1/sqrt(fan_in)): both backends start alike."""

    def __init__(self, in_dim: int, out_dim: int, rng: np.random.Generator) -> None:
        bound = 1.0 / math.sqrt(in_dim)
        self.kernel = _uniform(rng, (in_dim, out_dim), bound)
        self.bias = _uniform(rng, (out_dim,), bound)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.kernel[...] + self.bias[...]


class Embedding(nnx.Module):
    """A table of ``vocab_size`` rows; row 0 is the padding id (masked by every network that reads it)."""

    def __init__(self, vocab_size: int, dim: int, rng: np.random.Generator, bound: float | None = None, std: float = 1.0) -> None:
        table = std * rng.standard_normal((vocab_size, dim)) if bound is None else rng.uniform(-bound, bound, (vocab_size, dim))
        table[0] = 0.0  # as torch's padding_idx=0
        self.embedding = nnx.Param(jnp.asarray(table.astype(np.float32)))

    def __call__(self, ids: jax.Array) -> jax.Array:
        return self.embedding[...][ids]


class LayerNorm(nnx.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        self.scale = nnx.Param(jnp.ones(dim, jnp.float32))
        self.bias = nnx.Param(jnp.zeros(dim, jnp.float32))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]


class Conv1d(nnx.Module):
    """A 1D convolution over ``[batch, length, channels]`` with ``kernel // 2`` zeros each side, as torch's Conv1d
    with ``padding=kernel // 2`` (and its initialisation)."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int, rng: np.random.Generator) -> None:
        bound = 1.0 / math.sqrt(in_dim * kernel)
        self.kernel = _uniform(rng, (kernel, in_dim, out_dim), bound)
        self.bias = _uniform(rng, (out_dim,), bound)
        self.stride = stride
        self.pad = kernel // 2

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jax.lax.conv_general_dilated(x, self.kernel[...], (self.stride,), ((self.pad, self.pad),),
                                         dimension_numbers=("NWC", "WIO", "NWC"))
        return y + self.bias[...]


class Head(nnx.Module):
    """The classification head of every model: (dropout, linear, activation) per hidden layer, dropout, linear."""

    def __init__(self, spec: Any, in_dim: int, num_labels: int, rng: np.random.Generator) -> None:
        if spec.activation not in ACTIVATIONS:
            raise ConfigError(f"model.head.activation '{spec.activation}': the flax backend has "
                              f"{', '.join(ACTIVATIONS)}; choose one of them or backend: torch.")
        dims = [in_dim, *spec.hidden_dims, num_labels]
        self.layers = nnx.data([Dense(a, b, rng) for a, b in zip(dims[:-1], dims[1:])])
        self.activation = spec.activation
        self.dropout = spec.dropout

    def __call__(self, x: jax.Array, key: jax.Array | None) -> jax.Array:
        keys = _keys(key, len(self.layers))
        act = ACTIVATIONS[self.activation]
        for i, layer in enumerate(self.layers):
            x = layer(_dropout(x, self.dropout, keys[i]))
            if i < len(self.layers) - 1:
                x = act(x)
        return x


class BagNetwork(nnx.Module):
    """Mean (sum, max) of feature embeddings over a text's ids, then the head; fastText's initialisation."""

    def __init__(self, spec: Any, vocab_size: int, num_labels: int, rng: np.random.Generator) -> None:
        table = rng.uniform(-1.0 / spec.embed_dim, 1.0 / spec.embed_dim, (vocab_size, spec.embed_dim))
        table[0] = 0.0
        self.embedding = nnx.Param(jnp.asarray(table.astype(np.float32)))
        self.head = Head(spec.head, spec.embed_dim, num_labels, rng)
        self.pooling = spec.pooling
        self.feature_dropout = spec.feature_dropout

    def pool(self, vectors: jax.Array, mask: jax.Array) -> jax.Array:
        """Pool ``vectors [batch, width, dim]`` over the positions of ``mask``; an empty text pools to zeros."""
        m = mask[:, :, None]
        if self.pooling == "max":
            pooled = jnp.where(m, vectors, -jnp.inf).max(axis=1)
            return jnp.where(mask.any(axis=1)[:, None], pooled, 0.0)
        summed = jnp.where(m, vectors, 0.0).sum(axis=1)
        if self.pooling == "sum":
            return summed
        return summed / jnp.maximum(mask.sum(axis=1), 1)[:, None].astype(vectors.dtype)

    def features(self, batch: Batch, key: jax.Array | None) -> tuple[jax.Array, jax.Array | None]:
        mask = _mask(batch)
        head_key = None
        if key is not None:
            drop_key, head_key = jax.random.split(key)
            if self.feature_dropout > 0:
                mask = mask & jax.random.bernoulli(drop_key, 1.0 - self.feature_dropout, mask.shape)
        return mask, head_key

    def __call__(self, batch: Batch, key: jax.Array | None = None) -> jax.Array:
        mask, head_key = self.features(batch, key)
        return self.head(self.pool(self.embedding[...][batch["ids"]], mask), head_key)

    def flat_logits(self, batch: Batch, key: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """Logits of a flat batch (:func:`~textsift.backends.flax.shapes.flat_bag_batch`: ``feat``, ``seg``,
        ``count`` and ``weights``; ``feat`` indexes this network's table, sorted) and each entry's occurrences kept
        by feature dropout (``keep [T]``: of its ``count``, each occurrence dropped on its own). The same function as
        :meth:`__call__` on the padded batch: the training step's input, without padding to a width and with an id
        repeated in a text counted once."""
        keep = batch["count"]
        head_key = None
        if key is not None:
            drop_key, head_key = jax.random.split(key)
            if self.feature_dropout > 0:
                keep = jax.random.binomial(drop_key, keep, 1.0 - self.feature_dropout).astype(keep.dtype)
        vectors = self.embedding[...].at[batch["feat"]].get(mode="promise_in_bounds", indices_are_sorted=True)
        seg, rows = batch["seg"], batch["weights"].shape[0]
        count = jax.ops.segment_sum(keep, seg, rows)
        if self.pooling == "max":
            pooled = jax.ops.segment_max(jnp.where(keep[:, None] > 0, vectors, -jnp.inf), seg, rows)
            pooled = jnp.where(count[:, None] > 0, pooled, 0.0)
        else:
            pooled = jax.ops.segment_sum(vectors * keep[:, None], seg, rows)
            if self.pooling == "mean":
                pooled = pooled / jnp.maximum(count, 1.0)[:, None]
        return self.head(pooled, head_key), keep


class _ConvBlock(nnx.Module):
    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int, activation: str, dropout: float,
                 rng: np.random.Generator) -> None:
        self.conv = Conv1d(in_dim, out_dim, kernel, stride, rng)
        self.norm = LayerNorm(out_dim)
        self.activation = activation
        self.stride = stride
        self.dropout = dropout

    def __call__(self, x: jax.Array, key: jax.Array | None) -> jax.Array:  # x: [B, L, C]
        width = -(-x.shape[1] // self.stride)  # outputs whose window starts inside the input
        y = self.conv(x)[:, :width]
        return _dropout(ACTIVATIONS[self.activation](self.norm(y)), self.dropout, key)


class CnnNetwork(nnx.Module):
    """Embedding, two convolution blocks (conv, layer norm, activation, dropout), global max pool, head."""

    def __init__(self, spec: Any, vocab_size: int, num_labels: int, rng: np.random.Generator) -> None:
        stride = getattr(spec, "stride", 1)
        std = spec.embed_dim ** -0.5 if spec.embed_init == "fan_in" else 1.0
        self.embedding = Embedding(vocab_size, spec.embed_dim, rng, std=std)
        self.embed_dropout = spec.embed_dropout
        self.block1 = _ConvBlock(spec.embed_dim, spec.channels, spec.kernel_size, stride, spec.activation, spec.dropout, rng)
        self.block2 = _ConvBlock(spec.channels, spec.channels, spec.kernel_size, stride, spec.activation, spec.dropout, rng)
        self.head = Head(spec.head, spec.channels, num_labels, rng)
        self.stride = stride

    def __call__(self, batch: Batch, key: jax.Array | None = None) -> jax.Array:
        k1, k2, k3 = _keys(key, 3)
        batch = _at_least_one(batch)
        lengths = batch["lengths"]
        x = self.embedding(batch["ids"]) * _mask(batch)[:, :, None]  # padding is zero, as the convolution's own padding
        if key is not None and self.embed_dropout > 0:  # a key of its own: other configs keep their dropout masks
            x = _dropout(x, self.embed_dropout, jax.random.fold_in(key, 3))
        x = self.block1(x, k1)
        x = x * (jnp.arange(x.shape[1])[None, :] * self.stride < lengths[:, None])[:, :, None]
        x = self.block2(x, k2)
        valid = jnp.arange(x.shape[1])[None, :] * self.stride * self.stride < lengths[:, None]
        pooled = jnp.where(valid[:, :, None], x, -jnp.inf).max(axis=1)
        return self.head(pooled, k3)


class _Recurrence(nnx.Module):
    """One direction of one LSTM or GRU layer (torch's gate order and initialisation)."""

    def __init__(self, cell: str, in_dim: int, hidden: int, rng: np.random.Generator) -> None:
        gates = 4 if cell == "lstm" else 3
        self.cell = cell
        self.hidden = hidden
        bound = 1.0 / math.sqrt(hidden)
        self.w_in = _uniform(rng, (in_dim, gates * hidden), bound)
        self.b_in = _uniform(rng, (gates * hidden,), bound)
        self.w_h = _uniform(rng, (hidden, gates * hidden), bound)
        self.b_h = _uniform(rng, (gates * hidden,), bound)

    def __call__(self, x: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``x [B, L, D]``, ``valid [B, L]`` -> outputs ``[B, L, H]`` and the state after each text's last id.

        The state stops changing past a text's length: the final state is that of its last id."""
        projected = jnp.swapaxes(x @ self.w_in[...] + self.b_in[...], 0, 1)  # [L, B, G*H]: inputs, all steps at once
        steps = jnp.swapaxes(valid, 0, 1)[:, :, None].astype(x.dtype)  # [L, B, 1]: 1 inside the text
        scan = _lstm if self.cell == "lstm" else _gru
        out, h = scan(projected, self.w_h[...], self.b_h[...], steps)
        return jnp.swapaxes(out, 0, 1), h


# The recurrences with a hand-written backward pass (jax.custom_vjp) that skip the positions past the batch's
# longest text. Differentiated by jax, a scan's backward step multiplied the state's gradient by the recurrent
# weights and also accumulated the weights' gradient (one more product and many small ops at every step), and both
# passes computed every position of the padded bucket width. Here each step past the longest text (known at run
# time: one compilation per bucket still serves every length in it; torch's packed sequences stop there too) is a
# lax.cond that only carries the state, the backward loop does only what must be sequential (each step's gate
# gradients and the state's gradient through w_h), and the weights' gradient is one product over all steps after
# it. ``steps [L, B, 1]``: 1.0 where a text has an id, 0.0 past its end (the state is carried unchanged there, so
# the final state is that of each text's last id; positions past the longest text output the final state).

def _recurrence(forward: Callable[..., tuple[Any, Any]], backward: Callable[..., tuple[Any, ...]], doc: str) -> Any:
    """The differentiable recurrence of ``forward`` (``(projected, w_h, b_h, steps)`` -> ``((outputs, final),
    saved)``) with ``backward`` (``((saved, w_h, steps), (d_outputs, d_final))`` -> the four inputs' gradients)."""

    @jax.custom_vjp
    def run(projected: jax.Array, w_h: jax.Array, b_h: jax.Array, steps: jax.Array) -> tuple[jax.Array, jax.Array]:
        return forward(projected, w_h, b_h, steps)[0]

    def run_fwd(projected: jax.Array, w_h: jax.Array, b_h: jax.Array, steps: jax.Array) -> tuple[Any, Any]:
        result, saved = forward(projected, w_h, b_h, steps)
        return result, (saved, w_h, steps)

    run.defvjp(run_fwd, backward)
    run.__doc__ = doc
    return run


def _used(steps: jax.Array) -> jax.Array:
    """The number of leading positions that some text of the batch uses (its longest text's length)."""
    return jnp.sum(jnp.any(steps > 0, axis=(1, 2))).astype(jnp.int32)


def _lstm_forward(projected: jax.Array, w_h: jax.Array, b_h: jax.Array, steps: jax.Array) -> tuple[Any, Any]:
    length, rows, _ = projected.shape
    hidden = w_h.shape[0]
    n = _used(steps)
    zeros = jnp.zeros((rows, hidden), projected.dtype)

    def live(carry: tuple[jax.Array, jax.Array], xp: jax.Array, keep: jax.Array) -> tuple[Any, Any]:
        h, c = carry
        i, f, g, o = jnp.split(xp + h @ w_h + b_h, 4, axis=-1)
        i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
        c_new = f * c + i * g
        tanh_c = jnp.tanh(c_new)
        h_next, c_next = jnp.where(keep > 0, o * tanh_c, h), jnp.where(keep > 0, c_new, c)
        return (h_next, c_next), (h_next, (h, c, jnp.concatenate([i, f, g, o], -1), tanh_c))

    def idle(carry: tuple[jax.Array, jax.Array], xp: jax.Array, keep: jax.Array) -> tuple[Any, Any]:
        h, c = carry
        return carry, (h, (h, c, jnp.zeros_like(xp), h))

    def step(carry: tuple[jax.Array, jax.Array], inp: tuple[jax.Array, ...]) -> tuple[Any, Any]:
        xp, keep, t = inp
        return jax.lax.cond(t < n, live, idle, carry, xp, keep)

    (h, _), (out, saved) = jax.lax.scan(step, (zeros, zeros), (projected, steps, jnp.arange(length)))
    return (out, h), (*saved, n)


def _lstm_bwd(residuals: Any, grads: tuple[jax.Array, jax.Array]) -> tuple[Any, ...]:
    (h_prev, c_prev, gates, tanh_cs, n), w_h, steps = residuals
    d_out, d_final = grads
    w_t = w_h.T

    def live(carry: tuple[jax.Array, jax.Array], inp: tuple[jax.Array, ...]) -> tuple[Any, jax.Array]:
        dh, dc = carry
        d_o, c0, gate, tc, keep, _ = inp
        dh = dh + d_o
        i, f, g, o = jnp.split(gate, 4, axis=-1)
        dh_in, dc_in = dh * keep, dc * keep  # into this step's update; past a text's end the gradient passes through
        dc_total = dc_in + dh_in * o * (1.0 - tc * tc)
        d_gates = jnp.concatenate([dc_total * g * i * (1.0 - i), dc_total * c0 * f * (1.0 - f),
                                   dc_total * i * (1.0 - g * g), dh_in * tc * o * (1.0 - o)], -1)
        return (d_gates @ w_t + dh * (1.0 - keep), dc_total * f + dc * (1.0 - keep)), d_gates

    def idle(carry: tuple[jax.Array, jax.Array], inp: tuple[jax.Array, ...]) -> tuple[Any, jax.Array]:
        dh, dc = carry
        return (dh + inp[0], dc), jnp.zeros_like(inp[2])  # an output past the longest text is the final state

    def step(carry: tuple[jax.Array, jax.Array], inp: tuple[jax.Array, ...]) -> tuple[Any, jax.Array]:
        return jax.lax.cond(inp[-1] < n, live, idle, carry, inp)

    zeros = jnp.zeros_like(d_final)
    _, d_gates = jax.lax.scan(step, (d_final, zeros), (d_out, c_prev, gates, tanh_cs, steps, jnp.arange(d_out.shape[0])),
                              reverse=True)
    d_w = jnp.einsum("lbh,lbg->hg", h_prev, d_gates)
    return d_gates, d_w, d_gates.sum((0, 1)), jnp.zeros_like(steps)


_lstm = _recurrence(_lstm_forward, _lstm_bwd, """An LSTM direction over ``projected [L, B, 4H]`` (the inputs' products,
torch's gate order i, f, g, o): outputs ``[L, B, H]`` and the final state ``[B, H]``.""")


def _gru_forward(projected: jax.Array, w_h: jax.Array, b_h: jax.Array, steps: jax.Array) -> tuple[Any, Any]:
    length, rows, _ = projected.shape
    hidden = w_h.shape[0]
    n = _used(steps)

    def live(h: jax.Array, xp: jax.Array, keep: jax.Array) -> tuple[jax.Array, Any]:
        xr, xz, xn = jnp.split(xp, 3, axis=-1)
        hr, hz, hn = jnp.split(h @ w_h + b_h, 3, axis=-1)
        r, z = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
        n_ = jnp.tanh(xn + r * hn)
        h_next = jnp.where(keep > 0, (1.0 - z) * n_ + z * h, h)
        return h_next, (h_next, (h, r, z, n_, hn))

    def idle(h: jax.Array, xp: jax.Array, keep: jax.Array) -> tuple[jax.Array, Any]:
        return h, (h, (h, h, h, h, h))

    def step(h: jax.Array, inp: tuple[jax.Array, ...]) -> tuple[jax.Array, Any]:
        xp, keep, t = inp
        return jax.lax.cond(t < n, live, idle, h, xp, keep)

    zeros = jnp.zeros((rows, hidden), projected.dtype)
    h, (out, saved) = jax.lax.scan(step, zeros, (projected, steps, jnp.arange(length)))
    return (out, h), (*saved, n)


def _gru_bwd(residuals: Any, grads: tuple[jax.Array, jax.Array]) -> tuple[Any, ...]:
    (h_prev, r, z, n_, hn, n), w_h, steps = residuals
    d_out, d_final = grads
    w_t = w_h.T

    def live(dh: jax.Array, inp: tuple[jax.Array, ...]) -> tuple[jax.Array, Any]:
        d_o, h0, r_, z_, nt, hn_, keep, _ = inp
        dh = dh + d_o
        dh_in = dh * keep
        dn = dh_in * (1.0 - z_) * (1.0 - nt * nt)
        dz = dh_in * (h0 - nt) * z_ * (1.0 - z_)
        dr = dn * hn_ * r_ * (1.0 - r_)
        d_h = jnp.concatenate([dr, dz, dn * r_], -1)  # the state's products
        dh_prev = d_h @ w_t + dh_in * z_ + dh * (1.0 - keep)
        return dh_prev, (jnp.concatenate([dr, dz, dn], -1), d_h)

    def idle(dh: jax.Array, inp: tuple[jax.Array, ...]) -> tuple[jax.Array, Any]:
        zeros = jnp.zeros(dh.shape[:-1] + (3 * dh.shape[-1],), dh.dtype)
        return dh + inp[0], (zeros, zeros)  # an output past the longest text is the final state

    def step(dh: jax.Array, inp: tuple[jax.Array, ...]) -> tuple[jax.Array, Any]:
        return jax.lax.cond(inp[-1] < n, live, idle, dh, inp)

    _, (d_x, d_h) = jax.lax.scan(step, d_final, (d_out, h_prev, r, z, n_, hn, steps, jnp.arange(d_out.shape[0])),
                                 reverse=True)
    d_w = jnp.einsum("lbh,lbg->hg", h_prev, d_h)
    return d_x, d_w, d_h.sum((0, 1)), jnp.zeros_like(steps)


_gru = _recurrence(_gru_forward, _gru_bwd, """A GRU direction over ``projected [L, B, 3H]`` (torch's gate order r, z, n):
outputs ``[L, B, H]`` and the final state ``[B, H]``.""")


@jax.custom_vjp
def _reverse_within_length(x: jax.Array, lengths: jax.Array) -> jax.Array:
    """Reverse each row's first ``length`` positions (padding stays where it is); its own inverse, and so the
    transpose of its gradient too (a gather, where jax would differentiate the gather into a slower scatter)."""
    width = x.shape[1]
    pos = jnp.arange(width)[None, :]
    index = jnp.where(pos < lengths[:, None], lengths[:, None] - 1 - pos, pos)
    return jnp.take_along_axis(x, index[:, :, None] if x.ndim == 3 else index, axis=1)


def _reverse_fwd(x: jax.Array, lengths: jax.Array) -> tuple[jax.Array, jax.Array]:
    return _reverse_within_length(x, lengths), lengths


def _reverse_bwd(lengths: jax.Array, g: jax.Array) -> tuple[jax.Array, None]:
    return _reverse_within_length(g, lengths), None


_reverse_within_length.defvjp(_reverse_fwd, _reverse_bwd)


class RnnNetwork(nnx.Module):
    """LSTM or GRU layers (optionally bidirectional) over embeddings, last / mean / max pooling, head."""

    def __init__(self, spec: Any, vocab_size: int, num_labels: int, rng: np.random.Generator) -> None:
        self.embedding = Embedding(vocab_size, spec.embed_dim, rng)
        directions = 2 if spec.bidirectional else 1
        layers = []
        for layer in range(spec.layers):
            in_dim = spec.embed_dim if layer == 0 else spec.hidden_size * directions
            layers.append([_Recurrence(spec.type, in_dim, spec.hidden_size, rng) for _ in range(directions)])
        self.layers = nnx.data(layers)
        self.head = Head(spec.head, spec.hidden_size * directions, num_labels, rng)
        self.pooling = spec.pooling
        self.dropout = spec.dropout

    def __call__(self, batch: Batch, key: jax.Array | None = None) -> jax.Array:
        keys = _keys(key, len(self.layers) + 2)
        batch = _at_least_one(batch)
        lengths = batch["lengths"]
        valid = _mask(batch)
        x = _dropout(self.embedding(batch["ids"]), self.dropout, keys[0])
        finals: list[jax.Array] = []
        for i, directions in enumerate(self.layers):
            if i > 0:  # torch's dropout between stacked layers
                x = _dropout(x, self.dropout, keys[i])
            outs, finals = [], []
            for d, rnn in enumerate(directions):
                inp = x if d == 0 else _reverse_within_length(x, lengths)
                out, final = rnn(inp, valid)
                outs.append(out if d == 0 else _reverse_within_length(out, lengths))
                finals.append(final)
            x = jnp.concatenate(outs, axis=-1)
        if self.pooling == "last":
            pooled = jnp.concatenate(finals, axis=-1)
        elif self.pooling == "mean":
            pooled = jnp.where(valid[:, :, None], x, 0.0).sum(1) / jnp.maximum(lengths, 1)[:, None].astype(x.dtype)
        else:
            pooled = jnp.where(valid[:, :, None], x, -jnp.inf).max(1)
        return self.head(_dropout(pooled, self.dropout, keys[-2]), keys[-1])


#: the networks of this backend, by model type (the config's ``backend: flax`` allows these; see config.schema)
NETWORKS: dict[str, type[nnx.Module]] = {"bag": BagNetwork, "cnn": CnnNetwork, "lstm": RnnNetwork, "gru": RnnNetwork}


def build_network(spec: Any, *, vocab_size: int, num_labels: int, seed: int) -> nnx.Module:
    """The network of ``spec`` with fresh weights drawn from ``seed``."""
    cls = NETWORKS.get(spec.type)
    if cls is None:
        raise ConfigError(f"model.type '{spec.type}' has no network on the flax backend (it has {', '.join(NETWORKS)}). "
                          "Set backend: torch for this model, or choose one of those.")
    # drawn with numpy: jax's initialisers would compile one XLA program each, seconds per network on a CPU
    return cls(spec, vocab_size, num_labels, np.random.default_rng(seed))


def count_parameters(network: nnx.Module) -> int:
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(network, nnx.Param))))
