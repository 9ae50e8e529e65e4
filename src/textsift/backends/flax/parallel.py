"""Data parallelism over the local devices with ``jax.sharding``: one ``data`` mesh axis, parameters and optimizer
state replicated, each batch's rows split across the devices (XLA adds the gradient all-reduce).

On one device this is the same program on a mesh of one. Tested on CPU with two forced host devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=2``): the same loss as one device within 1e-5.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


class DataParallel:
    """The ``data`` mesh over ``jax.devices()`` (or the devices given) and the placements that go with it."""

    def __init__(self, devices: list[Any] | None = None) -> None:
        self.devices = list(devices if devices is not None else jax.devices())
        self.mesh = Mesh(np.array(self.devices), ("data",))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.rows = NamedSharding(self.mesh, PartitionSpec("data"))

    @property
    def size(self) -> int:
        return len(self.devices)

    def replicate(self, tree: Any) -> Any:
        if self.size == 1:  # plain placement: the same compiled programs as the runtime's, which has no mesh
            return jax.device_put(tree, self.devices[0])
        return jax.device_put(tree, self.replicated)

    def shard(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """A batch's arrays split by rows over the devices (rows must be a multiple of the device count)."""
        # one call for the whole batch (a call per array cost ~0.13 ms each, a step of the trec bag takes ~1 ms)
        return jax.device_put(batch, self.devices[0] if self.size == 1 else self.rows)

    def describe(self) -> str:
        kinds = sorted({d.platform for d in self.devices})
        return f"{self.size} {'/'.join(kinds)} device(s)"
