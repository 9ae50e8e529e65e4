"""Bag of n-grams: the mean of feature embeddings (torch.nn.EmbeddingBag), then the head."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from textsift import registry
from textsift.models.base import ModelSpec
from textsift.backends.torch.networks.heads import ClassificationHead, TorchClassifier


@registry.models.register("bag")
class BagSpec(ModelSpec):
    """fastText-style classifier over hashed word (and character) n-grams. Seconds on a CPU."""

    type: Literal["bag"] = "bag"
    input_format: ClassVar[str] = "bag"
    recommended: ClassVar[dict[str, Any]] = {
        "tokenizer": {"type": "hashed_ngrams", "word_ngrams": 2},
        "trainer": {
            "epochs": 5,
            "batch_size": "auto",
            "optimizer": {"type": "textsift.training.optim:SparseAdamW", "lr": 0.05, "sparse_eps": 0.2},
            "scheduler": {"type": "linear", "warmup_ratio": 0.0},
            "grad_clip": None,
            "early_stopping": {"patience": 2},
        },
    }
    embed_dim: int = Field(64, ge=1, description="Size of each feature embedding.")
    pooling: Literal["mean", "sum", "max"] = "mean"
    sparse: bool = Field(True, description="Sparse embedding gradients: only the rows a batch uses are updated.")
    feature_dropout: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="In training, drop each feature (n-gram) of a text with this probability (word dropout).",
    )

    def auto_batch_size(self, num_examples: int, mean_length: float) -> int:
        """About 120 steps an epoch, and proportionally fewer, larger steps for long texts (over 100
        features), whose batches then share more rows; the nearest power of two in [64, 512].
        Measured: TREC and R8 (4.9k examples) train best at 64, emotion (14k) at 128, SST-2 (60k) and
        IMDB (22k long reviews) at 512, where the larger batch also halves the time per epoch."""
        wanted = max(num_examples, 1) / 120 * max(1.0, mean_length / 100)
        return int(min(512, max(64, 2 ** round(math.log2(max(wanted, 1.0))))))

    def build(self, *, vocab_size: int, num_labels: int, tokenizer: Any = None) -> "BagClassifier":
        return BagClassifier(self, vocab_size, num_labels)


class _GatherRows(torch.autograd.Function):
    """``weight[rows]`` whose gradient is a sparse tensor over the (unique) ``rows`` only.

    EmbeddingBag's own sparse gradient has one row per token occurrence and must be coalesced
    (sorted and summed) by the optimizer every step; gathering the batch's distinct rows first makes
    the backward pass dense over a small table and hands the optimizer an already-coalesced gradient.

    The gradient is multiplied by ``scale`` (the number of feature occurrences in the batch), so it
    is expressed per occurrence: of order one whatever the batch size and text length. Adam ignores
    the scale except through its epsilon, which thus means the same on every dataset.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, rows: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(rows)
        ctx.shape = weight.shape
        ctx.scale = scale
        return weight.index_select(0, rows)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        (rows,) = ctx.saved_tensors
        # fresh indices: autograd can then keep this tensor as .grad (with its coalesced flag) instead of cloning it
        sparse = torch.sparse_coo_tensor(
            rows.unsqueeze(0).clone(), grad * ctx.scale, ctx.shape, is_coalesced=True, check_invariants=False
        )
        return sparse, None, None


def keep_ids(ids: torch.Tensor, offsets: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The flat ``ids`` where ``keep`` is true, and each text's offset into them (an emptied text stays, empty)."""
    kept_before = torch.cumsum(keep, 0) - keep.long()  # kept ids before each position
    return ids[keep], kept_before[offsets] if ids.numel() else offsets


class BagClassifier(TorchClassifier):
    input_format = "bag"

    def __init__(self, spec: BagSpec, vocab_size: int, num_labels: int) -> None:
        super().__init__()
        bound = 1.0 / spec.embed_dim
        weight = torch.empty(vocab_size, spec.embed_dim).uniform_(-bound, bound)  # fastText's initialisation
        weight[0].zero_()
        self.embedding = nn.EmbeddingBag(
            vocab_size, spec.embed_dim, mode=spec.pooling, sparse=spec.sparse, padding_idx=0, _weight=weight
        )
        self.head = ClassificationHead(spec.head, spec.embed_dim, num_labels)
        self.feature_dropout = spec.feature_dropout

    def _drop_features(self, ids: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return keep_ids(ids, offsets, torch.rand(ids.shape[0], device=ids.device) >= self.feature_dropout)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        emb = self.embedding
        ids, offsets = batch["ids"], batch["offsets"]
        if self.training and self.feature_dropout > 0:
            ids, offsets = self._drop_features(ids, offsets)
        if emb.sparse and self.training and torch.is_grad_enabled():
            rows, local = torch.unique(ids, return_inverse=True)
            table = _GatherRows.apply(emb.weight, rows, float(max(ids.numel(), 1)))
            pooled = nn.functional.embedding_bag(local, table, offsets, mode=emb.mode)
        else:  # evaluation (or a dense table): the sparse flag only shapes the gradient, and max pooling refuses it
            pooled = nn.functional.embedding_bag(ids, emb.weight, offsets, mode=emb.mode, padding_idx=emb.padding_idx,
                                                 sparse=emb.sparse and emb.mode != "max")
        return self.head(pooled)

    def sparse_parameters(self) -> list[nn.Parameter]:
        return [self.embedding.weight] if self.embedding.sparse else []
