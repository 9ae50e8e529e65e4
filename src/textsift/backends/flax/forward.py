"""The jitted forward pass of a split network: what the trainer's evaluation and the runtime run (no training code)."""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import numpy as np
from flax import nnx

from textsift.backends.flax.parallel import DataParallel
from textsift.backends.flax.shapes import bucket_rows, padded_batch
from textsift.batching import EncodedDataset, eval_batches


@partial(jax.jit, static_argnums=0)
def _forward(graphdef: Any, params: Any, ids: jax.Array, lengths: jax.Array) -> jax.Array:
    return nnx.merge(graphdef, params)({"ids": ids, "lengths": lengths}, None)


class Forward:
    """Logits of a split network, jitted once per (graph, rows, width): what evaluation and the runtime run. The
    graph is a static argument, so the trainer's evaluation and the runtime made after it share compilations."""

    def __init__(self, graphdef: Any) -> None:
        self.fn = partial(_forward, graphdef)

    def logits(self, params: Any, data: EncodedDataset, batch_size: int, parallel: DataParallel | None = None) -> np.ndarray:
        """Logits for every example of ``data``, in order (length-sorted batches inside, rows and widths bucketed)."""
        out: np.ndarray | None = None
        multiple = parallel.size if parallel is not None else 1
        for index in eval_batches(data.ids.lengths, batch_size):
            batch = padded_batch(data.ids, index, bucket_rows(len(index), multiple))
            if parallel is not None:
                placed = parallel.shard({"ids": batch["ids"], "lengths": batch["lengths"]})
                logits = np.asarray(self.fn(params, placed["ids"], placed["lengths"]))
            else:
                logits = np.asarray(self.fn(params, batch["ids"], batch["lengths"]))
            if out is None:
                out = np.empty((len(data), logits.shape[1]), np.float32)
            out[index] = logits[: len(index)]
        return out if out is not None else np.zeros((0, 0), np.float32)
