"""Bag of n-grams: the mean of feature embeddings (torch.nn.EmbeddingBag), then the head."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from textsift import registry
from textsift.models.base import ModelSpec
from textsift.models.torch.heads import ClassificationHead, TorchClassifier


@registry.models.register("bag")
class BagSpec(ModelSpec):
    """fastText-style classifier over hashed word (and character) n-grams. Seconds on a CPU."""

    type: Literal["bag"] = "bag"
    input_format: ClassVar[str] = "bag"
    recommended: ClassVar[dict[str, Any]] = {
        "tokenizer": {"type": "hashed_ngrams", "word_ngrams": 2},
        "trainer": {
            "epochs": 5,
            "batch_size": 256,
            "optimizer": {"type": "textsift.training.optim:SparseAdamW", "lr": 0.05},
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

    def build(self, *, vocab_size: int, num_labels: int) -> "BagClassifier":
        return BagClassifier(self, vocab_size, num_labels)


class _GatherRows(torch.autograd.Function):
    """``weight[rows]`` whose gradient is a sparse tensor over the (unique) ``rows`` only.

    EmbeddingBag's own sparse gradient has one row per token occurrence and must be coalesced
    (sorted and summed) by the optimizer every step; gathering the batch's distinct rows first makes
    the backward pass dense over a small table and hands the optimizer an already-coalesced gradient.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(rows)
        ctx.shape = weight.shape
        return weight.index_select(0, rows)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (rows,) = ctx.saved_tensors
        sparse = torch.sparse_coo_tensor(
            rows.unsqueeze(0), grad, ctx.shape, is_coalesced=True, check_invariants=False
        )
        return sparse, None


class BagClassifier(TorchClassifier):
    input_format = "bag"

    def __init__(self, spec: BagSpec, vocab_size: int, num_labels: int) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(
            vocab_size, spec.embed_dim, mode=spec.pooling, sparse=spec.sparse, padding_idx=0
        )
        bound = 1.0 / spec.embed_dim
        nn.init.uniform_(self.embedding.weight, -bound, bound)  # fastText's input initialisation
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        self.head = ClassificationHead(spec.head, spec.embed_dim, num_labels)
        self.feature_dropout = spec.feature_dropout

    def _drop_features(self, ids: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = torch.rand(ids.shape[0], device=ids.device) >= self.feature_dropout
        kept_before = torch.cumsum(keep, 0) - keep.long()  # kept ids before each position
        new_offsets = kept_before[offsets] if ids.numel() else offsets
        return ids[keep], new_offsets

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        emb = self.embedding
        ids, offsets = batch["ids"], batch["offsets"]
        if self.training and self.feature_dropout > 0:
            ids, offsets = self._drop_features(ids, offsets)
        if emb.sparse and self.training and torch.is_grad_enabled():
            rows, local = torch.unique(ids, return_inverse=True)
            table = _GatherRows.apply(emb.weight, rows)
            pooled = nn.functional.embedding_bag(local, table, offsets, mode=emb.mode)
        else:
            pooled = emb(ids, offsets)
        return self.head(pooled)

    def sparse_parameters(self) -> list[nn.Parameter]:
        return [self.embedding.weight] if self.embedding.sparse else []
