"""Fixed shapes for XLA: padded widths in a few buckets, batches of a fixed size.

jax compiles a function once per input shape. A batch's width (its longest text) is rounded up to the next bucket
(powers of two from :data:`MIN_WIDTH`), and a batch with fewer rows than the batch size gets rows of weight 0, so a
run compiles its step at most once per bucket, however many batches and epochs it has.
"""

from __future__ import annotations

import numpy as np

from textsift.batching import collate
from textsift.text.base import Ragged

MIN_WIDTH = 16


def bucket_width(longest: int) -> int:
    """The padded width of a batch whose longest text has ``longest`` ids: the next power of two >= 16."""
    return max(MIN_WIDTH, 1 << max(int(longest) - 1, 0).bit_length())


def bucket_rows(rows: int, multiple: int = 1) -> int:
    """Rows of an evaluation batch of ``rows`` examples: the next power of 8 from 8 (8, 64, 512, ...), a multiple of
    ``multiple``: few shapes to compile, and a single text costs 8 rows, not an evaluation batch's 512."""
    size = 8
    while size < rows:
        size *= 8
    return -(-size // multiple) * multiple


def padded_batch(ids: Ragged, index: np.ndarray, rows: int, labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The examples ``index`` as ``ids [rows, bucket width]`` (int32), ``lengths``, ``weights`` (1 real, 0 filler)
    and, with ``labels``, their labels; rows past ``len(index)`` are empty fillers of weight 0."""
    if len(index) > rows:
        raise ValueError(f"{len(index)} examples do not fit a batch of {rows} rows")
    batch = collate(ids, index, "padded", labels)
    width = bucket_width(int(batch["lengths"].max()) if len(index) else 1)
    out_ids = np.zeros((rows, width), np.int32)
    out_ids[: len(index), : batch["ids"].shape[1]] = batch["ids"]
    lengths = np.zeros(rows, np.int32)
    lengths[: len(index)] = batch["lengths"]
    weights = np.zeros(rows, np.float32)
    weights[: len(index)] = 1.0
    out = {"ids": out_ids, "lengths": lengths, "weights": weights}
    if labels is not None:
        y = batch["labels"]
        filled = np.zeros((rows, *y.shape[1:]), np.float32 if y.ndim == 2 else np.int32)
        filled[: len(index)] = y
        out["labels"] = filled
    return out
