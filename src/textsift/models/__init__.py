"""Models, backend-neutral: what every model spec provides (:class:`ModelSpec`, the head's settings).

The built-in specs (bag, linear, cnn, lstm/gru, transformer) sit beside the torch networks they build, in
``textsift.backends.torch.networks``; the flax backend builds its own networks from the same settings.
"""

from textsift.models.base import HeadSpec, ModelSpec

__all__ = ["HeadSpec", "ModelSpec"]
