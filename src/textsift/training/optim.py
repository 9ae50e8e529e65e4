"""The name configs give textsift's optimizer: ``trainer.optimizer.type: "textsift.training.optim:SparseAdamW"``.

The optimizer is torch code and lives in the torch backend, :mod:`textsift.backends.torch.optim`. Its config name
stays this one: the bag model's recommended settings, user configs and the ``config.yaml`` of every saved model
directory use it, the flax backend maps it to its own optax update, and a config's optimizer mapping merges over
the recommended one only when the two name the same type (a second name would silently drop the recommended
``sparse_eps``). The name resolves to the torch backend's class, imported on first use.
"""

from __future__ import annotations

from typing import Any

#: the import path configs name SparseAdamW by
CONFIG_NAME = "textsift.training.optim:SparseAdamW"


def __getattr__(name: str) -> Any:
    if name == "SparseAdamW":
        from textsift.backends.torch.optim import SparseAdamW

        return SparseAdamW
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
