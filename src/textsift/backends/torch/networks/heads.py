"""The shared classification head and the base of every torch classifier."""

from __future__ import annotations

import torch
from torch import nn

from textsift.models.base import HeadSpec

ACTIVATIONS = {
    "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "elu": nn.ELU, "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU, "prelu": nn.PReLU,
}


class ClassificationHead(nn.Module):
    def __init__(self, spec: HeadSpec, in_dim: int, num_labels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dim = in_dim
        for hidden in spec.hidden_dims:
            layers += [nn.Dropout(spec.dropout), nn.Linear(dim, hidden), ACTIVATIONS[spec.activation]()]
            dim = hidden
        layers += [nn.Dropout(spec.dropout), nn.Linear(dim, num_labels)]
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class TorchClassifier(nn.Module):
    """A network mapping a batch (dict of tensors) to logits ``[batch, num_labels]``."""

    input_format: str = "padded"

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def inference(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits for prediction (eval mode, no gradients): :meth:`forward`, unless a network has a faster way to
        compute the same function there."""
        return self(batch)

    def sparse_parameters(self) -> list[nn.Parameter]:
        """Parameters whose gradients are sparse (need an optimizer that takes sparse gradients)."""
        return []
