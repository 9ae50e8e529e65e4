"""A 1D convolutional network over token embeddings."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from textsift import registry
from textsift.models.base import SEQUENCE_MODEL_RECOMMENDED, Activation, ModelSpec
from textsift.backends.torch.networks.heads import ACTIVATIONS, ClassificationHead, TorchClassifier


@registry.models.register("cnn")
class CnnSpec(ModelSpec):
    """Embedding, two convolution blocks (conv, layer norm, activation, dropout), global max pool, head."""

    type: Literal["cnn"] = "cnn"
    recommended: ClassVar[dict[str, Any]] = SEQUENCE_MODEL_RECOMMENDED
    embed_dim: int = Field(128, ge=1)
    channels: int = Field(128, ge=1)
    kernel_size: int = Field(3, ge=1)
    stride: int = Field(1, ge=1, description="Stride of both convolutions (the JAX AI stack's IMDB network uses 3).")
    activation: Activation = "relu"
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    embed_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the token embeddings (the JAX AI stack's IMDB network: 0.5).")
    embed_init: Literal["normal", "fan_in"] = Field(
        "normal", description="Embedding init: N(0, 1) (torch's nn.Embedding) or N(0, 1/embed_dim) (flax's nnx.Embed, "
        "the JAX AI stack tutorial's; with Adam the embeddings then move as fast, relative to their size, as the rest).")

    def build(self, *, vocab_size: int, num_labels: int, tokenizer: Any = None) -> "CnnClassifier":
        return CnnClassifier(self, vocab_size, num_labels)


class _ConvBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, kernel: int, activation: str, dropout: float, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel, stride=stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(out_dim)
        self.act = ACTIVATIONS[activation]()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, length: int) -> torch.Tensor:  # x: [B, L, C]
        y = self.conv(x.transpose(1, 2))[:, :, :length].transpose(1, 2)
        return self.drop(self.act(self.norm(y)))


class CnnClassifier(TorchClassifier):
    def __init__(self, spec: CnnSpec, vocab_size: int, num_labels: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, spec.embed_dim, padding_idx=0)
        if spec.embed_init == "fan_in":
            with torch.no_grad():
                self.embedding.weight.normal_(0.0, spec.embed_dim ** -0.5)
                self.embedding.weight[0].zero_()
        self.embed_drop = nn.Dropout(spec.embed_dropout)
        self.block1 = _ConvBlock(spec.embed_dim, spec.channels, spec.kernel_size, spec.activation, spec.dropout, spec.stride)
        self.block2 = _ConvBlock(spec.channels, spec.channels, spec.kernel_size, spec.activation, spec.dropout, spec.stride)
        self.head = ClassificationHead(spec.head, spec.channels, num_labels)
        self.stride = spec.stride

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids, lengths = batch["ids"], batch["lengths"]
        s = self.stride  # an output position j of a block reads from input position j * s on
        # ceil(width / s) written with non-negative operands: the ONNX export turns // into Div, which truncates
        # toward zero, so -(-w // s) became -(-w / s) there (a width of 1 -> 0, 4 -> 1 at stride 3)
        width1 = (ids.shape[1] + s - 1) // s
        width2 = (width1 + s - 1) // s
        keep = (torch.arange(width1, device=ids.device)[None, :] * s < lengths[:, None])[:, :, None]
        mask = torch.arange(width2, device=ids.device)[None, :] * s * s < lengths[:, None]
        x = self.embed_drop(self.embedding(ids))  # padding rows are zero, like the convolution's own zero padding
        x = self.block1(x, width1) * keep  # so a text gives the same result however much it is padded
        x = self.block2(x, width2)
        x = x.masked_fill(~mask[:, :, None], float("-inf"))
        return self.head(x.max(dim=1).values)
