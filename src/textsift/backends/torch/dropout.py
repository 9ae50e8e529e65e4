"""Dropout whose mask costs what a CPU can give it.

On a CPU torch draws a dropout mask with ``bernoulli_``, which takes MKL's vectorised generator on Intel processors
only; on every other CPU (AMD EPYC here) it draws two 32-bit Mersenne Twister numbers for each element, one element
at a time under the generator's lock: 1.8 ms for one ``[32, 24, 384]`` hidden state of a MiniLM step, 13% of a bf16
fine-tuning step (``torch.profiler``, BENCHMARKS.md's fine-tuning notes). :func:`dropout` draws 64 bits from the same
generator for every four elements (a 16-bit threshold each), so ``torch.manual_seed``, a checkpoint's saved RNG state
and a resumed run keep deciding the masks, and keeps the mask as the scale the backward multiplies by.

The keep probability is ``1 - round(p * 65536) / 65536`` (for ``p = 0.1``: 0.899994 instead of 0.9, a difference of
6e-6). Everywhere the native kernel is the fast one (a GPU, an Intel CPU) and outside training, it is used as before.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import nn

_LEVELS = 1 << 16


@functools.cache
def native_mask_is_slow() -> bool:
    """True on a CPU whose vendor is not Intel: there torch's ``bernoulli_`` takes its element-by-element path."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return "GenuineIntel" not in line
    except OSError:
        pass
    return False  # unknown: keep torch's own kernel


def keep_mask(shape: torch.Size, p: float, dtype: torch.dtype) -> torch.Tensor:
    """``1 / (1 - p)`` where an element is kept, 0 where it is dropped (each dropped with probability ``p``, to
    1/65536), drawn from torch's default CPU generator."""
    n = int(np.prod(shape))
    bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(1 << 63), None)  # the full 64 bits of each draw
    keep = bits.numpy().view(np.uint16)[:n] >= round(p * _LEVELS)
    scale = torch.tensor(1.0 / (1.0 - p), dtype=dtype)
    return torch.where(torch.from_numpy(keep).view(shape), scale, torch.zeros((), dtype=dtype))


class _MaskedScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (mask,) = ctx.saved_tensors
        return grad * mask, None


def _ours(x: torch.Tensor, p: float, training: bool) -> bool:
    """Whether textsift draws this dropout's mask: in training, 0 < p < 1, on a CPU where torch's draw is slow."""
    return training and 0.0 < p < 1.0 and x.device.type == "cpu" and native_mask_is_slow()


def _drop(x: torch.Tensor, p: float) -> torch.Tensor:
    return _MaskedScale.apply(x, keep_mask(x.shape, p, x.dtype))


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``torch.nn.functional.dropout(x, p, training)``, with the mask drawn by :func:`keep_mask` on a CPU where
    torch's own draw is element by element."""
    return _drop(x, p) if _ours(x, p, training) else nn.functional.dropout(x, p, training)


class Dropout(nn.Dropout):
    """``nn.Dropout`` through :func:`dropout` (no parameters, no state: swapping one for the other changes no
    weights file)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return nn.functional.dropout(x, self.p, self.training, inplace=True)
        return dropout(x, self.p, self.training)


def use_fast_dropout(model: nn.Module) -> int:
    """Replace every ``nn.Dropout`` in ``model`` (a pretrained encoder's too) by :class:`Dropout` of the same ``p``,
    in place; returns how many were replaced."""
    swapped = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Dropout:
                fast = Dropout(child.p, child.inplace)
                fast.train(child.training)
                setattr(module, name, fast)
                swapped += 1
    return swapped


ATTENTION = "textsift_sdpa"


def _attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
               **kwargs: object) -> tuple[torch.Tensor, None]:
    """transformers' ``sdpa`` attention, except in training on a CPU where :func:`dropout` is the fast one: there
    torch's SDPA takes its math path (its CPU flash kernel has no dropout) and draws the attention dropout with
    ``bernoulli_``. This is that math path (fp32 for half-precision inputs, as SDPA's) with :func:`dropout`."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    plain = (not _ours(query, dropout, module.training) or kwargs.get("is_causal") or getattr(module, "is_causal", False)
             or key.shape[1] != query.shape[1] or (attention_mask is not None and attention_mask.dtype != torch.bool))
    if plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    dtype = query.dtype
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    with torch.autocast("cpu", enabled=False):
        q, k, v = (t.float() for t in (query, key, value))
        scores = torch.matmul(q, k.transpose(-1, -2)) * scale
        if attention_mask is not None:  # True: attend
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        probs = _drop(torch.softmax(scores, dim=-1), dropout)
        out = torch.matmul(probs, v).to(dtype)
    return out.transpose(1, 2).contiguous(), None


def use_fast_attention_dropout(model: nn.Module) -> int:
    """Point every transformers encoder in ``model`` that uses ``sdpa`` attention at :func:`_attention`; returns
    how many were switched. Not saved: ``_attn_implementation`` stays out of a saved config.json."""
    try:
        from transformers import AttentionInterface, PreTrainedModel
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    except ImportError:
        return 0
    switched = 0
    for module in model.modules():
        if isinstance(module, PreTrainedModel) and getattr(module.config, "_attn_implementation", None) == "sdpa":
            AttentionInterface.register(ATTENTION, _attention)
            AttentionMaskInterface.register(ATTENTION, sdpa_mask)  # the boolean masks sdpa is given
            module.set_attn_implementation(ATTENTION)
            switched += 1
    return switched
