"""Batches: length-bucketed sampling and collation into backend-neutral numpy arrays.

Two input formats, chosen by the model:

* ``"bag"``: ``ids`` (all ids of the batch, flat) and ``offsets`` (where each example starts);
* ``"padded"``: ``ids`` of shape ``[batch, longest]`` padded with 0, and ``lengths``.

The order of training batches is a pure function of ``(seed, epoch)``, so a resumed run replays it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from textsift.text.base import Ragged

Batch = dict[str, np.ndarray]


def epoch_batches(
    lengths: np.ndarray, batch_size: int, *, seed: int, epoch: int, bucket: bool = True, pool: int = 64
) -> list[np.ndarray]:
    """Shuffled training batches (index arrays) for one epoch.

    With ``bucket``, indices are shuffled, cut into pools of ``pool`` batches, each pool sorted by
    length and cut into batches, and the batches shuffled: little padding, still random.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if bucket:
        chunk = batch_size * pool
        pieces = []
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            pieces.append(part[np.argsort(lengths[part], kind="stable")])
        order = np.concatenate(pieces) if pieces else order
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if bucket:
        perm = rng.permutation(len(batches))
        batches = [batches[i] for i in perm]
    return batches


def eval_batches(lengths: np.ndarray, batch_size: int, *, max_tokens: int | None = None) -> list[np.ndarray]:
    """Batches in order of length (least padding); callers put results back by index."""
    order = np.argsort(lengths, kind="stable")
    if max_tokens is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches, current, longest = [], [], 0
    for i in order:
        longest_if = max(longest, int(lengths[i]))
        if current and (len(current) >= batch_size or longest_if * (len(current) + 1) > max_tokens):
            batches.append(np.array(current))
            current, longest_if = [], int(lengths[i])
        current.append(i)
        longest = longest_if
    if current:
        batches.append(np.array(current))
    return batches


def collate(ids: Ragged, index: np.ndarray, fmt: str, labels: np.ndarray | None = None) -> Batch:
    rows = ids.take(index)
    batch: Batch = {"index": index}
    if fmt == "bag":
        batch["ids"] = rows.values
        batch["offsets"] = rows.offsets[:-1]
    elif fmt == "padded":
        lengths = rows.lengths
        width = max(int(lengths.max()) if len(lengths) else 1, 1)
        padded = np.zeros((len(index), width), dtype=np.int64)
        mask = np.arange(width)[None, :] < lengths[:, None]
        padded[mask] = rows.values
        batch["ids"] = padded
        batch["lengths"] = lengths
    else:
        raise ValueError(f"unknown input format {fmt!r}")
    if labels is not None:
        batch["labels"] = labels[index]
    return batch


@dataclass
class EncodedDataset:
    """A dataset after the text-to-ids step: ids, and label indices when the data has labels."""

    ids: Ragged
    labels: np.ndarray | None

    def __len__(self) -> int:
        return len(self.ids)

    def iter_batches(self, batches: list[np.ndarray], fmt: str) -> Iterator[Batch]:
        for index in batches:
            yield collate(self.ids, index, fmt, self.labels)
