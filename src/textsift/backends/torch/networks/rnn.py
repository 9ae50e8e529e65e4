"""LSTM and GRU networks over token embeddings, with last / mean / max pooling."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textsift import registry
from textsift.models.base import SEQUENCE_MODEL_RECOMMENDED, ModelSpec
from textsift.backends.torch.networks.heads import ClassificationHead, TorchClassifier


class RnnSpec(ModelSpec):
    recommended: ClassVar[dict[str, Any]] = SEQUENCE_MODEL_RECOMMENDED
    embed_dim: int = Field(128, ge=1)
    hidden_size: int = Field(128, ge=1)
    layers: int = Field(1, ge=1)
    bidirectional: bool = True
    pooling: Literal["last", "mean", "max"] = "max"
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="Dropout on embeddings and between layers.")

    def build(self, *, vocab_size: int, num_labels: int, tokenizer: Any = None) -> "RnnClassifier":
        return RnnClassifier(self, vocab_size, num_labels)


@registry.models.register("lstm")
class LstmSpec(RnnSpec):
    """Long short-term memory network."""

    type: Literal["lstm"] = "lstm"


@registry.models.register("gru")
class GruSpec(RnnSpec):
    """Gated recurrent unit network."""

    type: Literal["gru"] = "gru"


class RnnClassifier(TorchClassifier):
    def __init__(self, spec: RnnSpec, vocab_size: int, num_labels: int) -> None:
        super().__init__()
        self.pooling = spec.pooling
        self.embedding = nn.Embedding(vocab_size, spec.embed_dim, padding_idx=0)
        self.drop = nn.Dropout(spec.dropout)
        cell = nn.LSTM if spec.type == "lstm" else nn.GRU
        self.rnn = cell(
            spec.embed_dim, spec.hidden_size, num_layers=spec.layers, batch_first=True,
            bidirectional=spec.bidirectional, dropout=spec.dropout if spec.layers > 1 else 0.0,
        )
        self.directions = 2 if spec.bidirectional else 1
        self.head = ClassificationHead(spec.head, spec.hidden_size * self.directions, num_labels)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids, lengths = batch["ids"], batch["lengths"]
        x = self.drop(self.embedding(ids))
        packed = pack_padded_sequence(x, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        out, hidden = self.rnn(packed)
        if self.pooling == "last":
            h = hidden[0] if isinstance(hidden, tuple) else hidden  # [layers*dirs, B, H]
            pooled = torch.cat([h[-d] for d in range(self.directions, 0, -1)], dim=-1)
        else:
            seq, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
            mask = (torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None])[:, :, None]
            if self.pooling == "mean":
                pooled = (seq * mask).sum(1) / mask.sum(1).clamp(min=1)
            else:
                pooled = seq.masked_fill(~mask, float("-inf")).max(1).values
        return self.head(self.drop(pooled))
