"""Models: specs (settings) and their networks, one module per family."""

from textsift.models.base import HeadSpec, ModelSpec

__all__ = ["HeadSpec", "ModelSpec"]
