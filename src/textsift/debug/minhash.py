"""Near-duplicate texts across two collections: MinHash signatures and locality-sensitive hashing, in numpy.

Each text is the set of its words after :func:`textsift.data.checks.normalize` (word shingles of length 1: a copy with
10% of its words replaced keeps a Jaccard similarity of 0.9/1.1 = 0.82, with longer shingles it would fall below 0.8).
A signature holds ``bands * rows`` minimum hash values; two texts become a candidate pair when all ``rows`` values of
some band agree, which happens with probability ``1 - (1 - J**rows) ** bands`` (20 bands of 6 rows: 0.998 at J = 0.8,
0.001 at J = 0.2). Candidates are then screened by the share of agreeing signature values and kept only if their
exact Jaccard similarity reaches the threshold: the pairs returned are exact, only a rare one may be missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_PRIME = np.uint64((1 << 31) - 1)  # a Mersenne prime; word ids and the hash coefficients stay below it


@dataclass(frozen=True)
class NearDuplicate:
    left: int  # index in the first collection
    right: int  # index in the second collection
    jaccard: float


class MinHasher:
    """Word-set MinHash signatures for texts whose words share one id space (see :meth:`ids`)."""

    def __init__(self, bands: int = 20, rows: int = 6, seed: int = 0) -> None:
        self.bands, self.rows = bands, rows
        rng = np.random.default_rng(seed)
        n = bands * rows
        self._a = rng.integers(1, int(_PRIME), size=n, dtype=np.uint64)
        self._b = rng.integers(0, int(_PRIME), size=n, dtype=np.uint64)
        self._vocab: dict[str, int] = {}

    def ids(self, words: Sequence[str]) -> np.ndarray:
        """The sorted, unique ids of ``words`` (new words get new ids)."""
        vocab = self._vocab
        return np.unique(np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), dtype=np.int64, count=len(words)))

    def signatures(self, sets: Sequence[np.ndarray], chunk: int = 1 << 17) -> np.ndarray:
        """``len(sets) x (bands * rows)`` minimum hashes (uint32); an empty set gets the largest value everywhere."""
        n_hash = self.bands * self.rows
        out = np.full((len(sets), n_hash), np.iinfo(np.uint32).max, dtype=np.uint32)
        if not len(self._vocab):
            return out
        word_ids = np.arange(len(self._vocab), dtype=np.uint64)
        table = ((word_ids[:, None] * self._a[None, :] + self._b[None, :]) % _PRIME).astype(np.uint32)  # words x hashes
        start = 0
        while start < len(sets):  # texts in chunks of about ``chunk`` words: bounded memory on long texts
            stop, words = start, 0
            while stop < len(sets) and (words == 0 or words + len(sets[stop]) <= chunk):
                words += len(sets[stop])
                stop += 1
            part = [s for s in sets[start:stop]]
            lengths = np.fromiter((len(s) for s in part), dtype=np.int64, count=len(part))
            nonempty = np.flatnonzero(lengths)
            if len(nonempty):
                flat = np.concatenate([part[i] for i in nonempty])
                offsets = np.concatenate([[0], np.cumsum(lengths[nonempty])[:-1]])
                out[start + nonempty] = np.minimum.reduceat(table[flat], offsets, axis=0)
            start = stop
        return out

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """One 64-bit key per text and band (``texts x bands``): equal rows of a band give equal keys."""
        rng = np.random.default_rng(12345)
        mult = rng.integers(1, 1 << 63, size=self.rows, dtype=np.uint64) | np.uint64(1)
        sig = signatures.astype(np.uint64).reshape(len(signatures), self.bands, self.rows)
        with np.errstate(over="ignore"):
            return (sig * mult[None, None, :]).sum(axis=2, dtype=np.uint64)


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if not len(a) and not len(b):
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def near_duplicates(
    left: Sequence[Sequence[str]], right: Sequence[Sequence[str]], *, threshold: float = 0.8, bands: int = 20, rows: int = 6,
    seed: int = 0, max_pairs_per_bucket: int = 1000,
) -> list[NearDuplicate]:
    """Pairs (i, j) of ``left[i]`` and ``right[j]`` (each a list of words) whose word sets have Jaccard >= ``threshold``.

    Texts without words are never paired. ``max_pairs_per_bucket``: a band value shared by more left texts than this
    (a boilerplate text repeated many times) pairs only with the first of them, to bound the work.
    """
    hasher = MinHasher(bands, rows, seed)
    left_sets = [hasher.ids(words) for words in left]
    right_sets = [hasher.ids(words) for words in right]
    sig_l, sig_r = hasher.signatures(left_sets), hasher.signatures(right_sets)
    keys_l, keys_r = hasher.band_keys(sig_l), hasher.band_keys(sig_r)
    empty_l = np.fromiter((len(s) == 0 for s in left_sets), dtype=bool, count=len(left_sets))
    empty_r = np.fromiter((len(s) == 0 for s in right_sets), dtype=bool, count=len(right_sets))
    found: list[np.ndarray] = []
    for band in range(bands):
        kl, kr = keys_l[:, band], keys_r[:, band]
        order = np.argsort(kl, kind="stable")
        sorted_keys = kl[order]
        lo = np.searchsorted(sorted_keys, kr, side="left")
        hi = np.minimum(np.searchsorted(sorted_keys, kr, side="right"), lo + max_pairs_per_bucket)
        counts = hi - lo
        counts[empty_r] = 0
        if not counts.any():
            continue
        right_idx = np.repeat(np.arange(len(kr)), counts)
        starts = np.repeat(lo, counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        left_idx = order[starts + within]
        keep = ~empty_l[left_idx]
        found.append(left_idx[keep].astype(np.int64) * len(right_sets) + right_idx[keep])
    if not found:
        return []
    pairs = np.unique(np.concatenate(found))
    li, ri = pairs // max(len(right_sets), 1), pairs % max(len(right_sets), 1)
    # screen by the estimated similarity (the share of equal signature values), generously below the threshold
    agree = np.empty(len(pairs))
    for s in range(0, len(pairs), 1 << 16):
        agree[s : s + (1 << 16)] = (sig_l[li[s : s + (1 << 16)]] == sig_r[ri[s : s + (1 << 16)]]).mean(axis=1)
    screened = np.flatnonzero(agree >= threshold - 0.2)
    out = []
    for k in screened:
        j = _jaccard(left_sets[li[k]], right_sets[ri[k]])
        if j >= threshold:
            out.append(NearDuplicate(int(li[k]), int(ri[k]), j))
    return out
