"""Fixed shapes for XLA: padded widths in a few buckets, batches of a fixed size.

jax compiles a function once per input shape. A batch's width (its longest text) is rounded up to the next bucket
(powers of two from :data:`MIN_WIDTH`), and a batch with fewer rows than the batch size gets rows of weight 0, so a
run compiles its step at most once per bucket, however many batches and epochs it has.
"""

from __future__ import annotations

import math

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


#: the table-row index of a filler entry of ``rows`` (out of bounds: gathers read zeros there, scatters drop it)
NO_ROW = np.iinfo(np.int32).max


#: the smallest flat batch, in entries and in distinct rows (small batches share one shape)
FLAT_MIN = 4096


#: flat sizes grow by a quarter octave (x 2^(1/4)): a batch is at most 19% filler (powers of two: up to half, which
#: the bag's step then gathered, summed and updated for nothing; IMDB's batches of ~140,000 entries met 262,144)
STEPS_PER_OCTAVE = 4


def bucket_count(n: int) -> int:
    """The padded size of ``n`` flat entries (or of a flat batch's distinct rows): the next size of the series
    ``FLAT_MIN x 2^(k/4)`` (each rounded up to a multiple of ``FLAT_MIN / 64``) from :data:`FLAT_MIN`: few sizes, a
    compilation each."""
    quantum = max(FLAT_MIN // 64, 1)
    size, k = FLAT_MIN, 0
    while size < n:
        k += 1
        size = math.ceil(FLAT_MIN * 2 ** (k / STEPS_PER_OCTAVE) / quantum) * quantum
    return size


def flat_bag_batch(ids: Ragged, index: np.ndarray, rows: int, labels: np.ndarray | None = None, *,
                   gather_rows: bool = True) -> dict[str, np.ndarray]:
    """The examples ``index`` as one flat list of (text, id, count) entries, for the bag's training step: no padding
    to a width, and an id that occurs several times in a text is one entry with its count.

    Entries are sorted by table row, so that the step's gathers and its gradient's scatter read memory in order:
    ``feat [T]`` (int32) is each entry's table row (``gather_rows=False``) or its index into ``rows`` (the batch's
    distinct table rows, sorted, padded with :data:`NO_ROW`), ``seg [T]`` its example (batch row), ``count [T]``
    (float32) how often the id occurs in that text (0 for a filler). ``T`` and ``len(rows)`` are bucketed
    (:func:`bucket_count`) so that the step compiles once per pair of buckets met (a filler row costs nearly what a
    real one does, so the rows are bucketed apart from the entries); ``lengths``, ``weights`` and ``labels`` are as
    in :func:`padded_batch` (``rows`` batch rows, fillers of weight 0)."""
    if len(index) > rows:
        raise ValueError(f"{len(index)} examples do not fit a batch of {rows} rows")
    taken = ids.take(index)
    lengths = taken.lengths
    values = taken.values
    order = np.argsort(values, kind="stable")  # stable: within an id, its texts in batch order
    sorted_values = values[order]
    sorted_seg = np.repeat(np.arange(len(index), dtype=np.int32), lengths)[order]
    new_id = np.ones(len(values), bool)
    new_id[1:] = sorted_values[1:] != sorted_values[:-1]
    new_entry = new_id.copy()
    new_entry[1:] |= sorted_seg[1:] != sorted_seg[:-1]
    starts = np.flatnonzero(new_entry)
    n = len(starts)
    total = bucket_count(n)
    feat = np.empty(total, np.int32)
    if gather_rows:
        distinct = sorted_values[new_id]
        table_rows = np.full(bucket_count(len(distinct)), NO_ROW, np.int32)
        table_rows[: len(distinct)] = distinct
        feat[:n] = (np.cumsum(new_id, dtype=np.int64) - 1)[starts]
    else:
        feat[:n] = sorted_values[starts]
    feat[n:] = feat[n - 1] if n else 0  # fillers keep the order sorted
    seg = np.zeros(total, np.int32)
    seg[:n] = sorted_seg[starts]
    count = np.zeros(total, np.float32)
    count[:n] = np.diff(np.append(starts, len(values)))
    out_lengths = np.zeros(rows, np.int32)
    out_lengths[: len(index)] = lengths
    weights = np.zeros(rows, np.float32)
    weights[: len(index)] = 1.0
    out = {"feat": feat, "seg": seg, "count": count, "lengths": out_lengths, "weights": weights}
    if gather_rows:
        out["rows"] = table_rows
    if labels is not None:
        y = labels[index]
        filled = np.zeros((rows, *y.shape[1:]), np.float32 if y.ndim == 2 else np.int32)
        filled[: len(index)] = y
        out["labels"] = filled
    return out
