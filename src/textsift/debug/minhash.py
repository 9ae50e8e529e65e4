"""Near-duplicate texts across two collections: MinHash signatures and locality-sensitive hashing, in numpy.

Each text is the multiset of its words after :func:`textsift.data.checks.normalize` (word shingles of length 1, a
repeated word counted again: a copy with 10% of its words replaced keeps a Jaccard similarity of 0.9/1.1 = 0.82; with
longer shingles it would fall below 0.8).
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


@dataclass(frozen=True)
class Multisets:
    """Texts as multisets of words, in flat arrays: text ``t`` is ``words[offsets[t]:offsets[t + 1]]`` with ``ranks``
    telling repeats apart (0 for a word's first occurrence in its text, 1 for the second, ...)."""

    words: np.ndarray  # int64 word ids
    ranks: np.ndarray  # int64
    offsets: np.ndarray  # int64, texts + 1
    vocabulary: int

    def shingles(self, t: int) -> np.ndarray:
        """The distinct shingles (word, repeat) of text ``t`` as int64 values."""
        sl = slice(self.offsets[t], self.offsets[t + 1])
        return self.words[sl] + self.ranks[sl] * self.vocabulary


def word_multisets(texts: Sequence[str]) -> Multisets:
    """Texts whose words are separated by single spaces (as :func:`textsift.data.checks.normalize` gives) as
    :class:`Multisets`. Vectorised: Python touches each distinct word once; one sort of all words."""
    lengths = np.fromiter((t.count(" ") + 1 if t else 0 for t in texts), dtype=np.int64, count=len(texts))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    words = " ".join(t for t in texts if t).split(" ") if offsets[-1] else []
    if not words:
        return Multisets(np.zeros(0, np.int64), np.zeros(0, np.int64), offsets, 0)
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    ids = np.fromiter(map(vocab.__getitem__, words), dtype=np.int64, count=len(words))
    doc = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    key = np.sort(doc * len(vocab) + ids)  # by text, then word: each text's words stay within its offsets
    new_run = np.r_[True, key[1:] != key[:-1]]
    starts = np.flatnonzero(new_run)
    ranks = np.arange(len(key)) - np.repeat(starts, np.diff(np.r_[starts, len(key)]))
    return Multisets(key % len(vocab), ranks, offsets, len(vocab))


def signatures(sets: Multisets, bands: int, rows: int, seed: int, chunk: int = 1 << 17) -> np.ndarray:
    """``texts x (bands * rows)`` minimum hashes (uint32) of each text's shingles; an empty text gets the largest value.

    A shingle (word w, repeat r) hashes to ``T[w] xor R[r]`` per hash function (simple tabulation hashing, which
    min-wise hashing works with): no table of every shingle is built."""
    rng = np.random.default_rng(seed)
    n_hash = bands * rows
    a = rng.integers(1, int(_PRIME), size=n_hash, dtype=np.uint64)
    b = rng.integers(0, int(_PRIME), size=n_hash, dtype=np.uint64)
    offsets = sets.offsets
    n_texts = len(offsets) - 1
    out = np.full((n_texts, n_hash), np.iinfo(np.uint32).max, dtype=np.uint32)
    if not sets.vocabulary:
        return out
    table = ((np.arange(sets.vocabulary, dtype=np.uint64)[:, None] * a[None, :] + b[None, :]) % _PRIME).astype(np.uint32)
    repeats = rng.integers(0, 1 << 31, size=(int(sets.ranks.max()) + 1, n_hash), dtype=np.uint32)
    repeats[0] = 0  # a word's first occurrence hashes as the word
    lengths = np.diff(offsets)
    start = 0
    while start < n_texts:  # texts in chunks of about ``chunk`` words: bounded memory on long texts
        stop = max(int(np.searchsorted(offsets, offsets[start] + chunk, side="right")) - 1, start + 1)
        nonempty = start + np.flatnonzero(lengths[start:stop])
        if len(nonempty):
            sl = slice(offsets[start], offsets[stop])
            hashes = table[sets.words[sl]]
            hashes ^= repeats[sets.ranks[sl]]
            out[nonempty] = np.minimum.reduceat(hashes, offsets[nonempty] - offsets[start], axis=0)
        start = stop
    return out


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per text and band (``texts x bands``): equal rows of a band give equal keys."""
    mult = np.random.default_rng(12345).integers(1, 1 << 63, size=rows, dtype=np.uint64) | np.uint64(1)
    with np.errstate(over="ignore"):
        return (sig.astype(np.uint64).reshape(len(sig), bands, rows) * mult[None, None, :]).sum(axis=2, dtype=np.uint64)


def near_duplicates(
    left: Sequence[str], right: Sequence[str], *, threshold: float = 0.8, bands: int = 20, rows: int = 6,
    seed: int = 0, max_pairs_per_bucket: int = 1000,
) -> list[NearDuplicate]:
    """Pairs (i, j) of ``left[i]`` and ``right[j]`` (normalised texts: words separated by single spaces) whose word
    multisets have Jaccard >= ``threshold``. Texts without words are never paired. ``max_pairs_per_bucket``: a band
    value shared by more left texts than this (a boilerplate text repeated many times) pairs only with the first of
    them, to bound the work."""
    sets = word_multisets(list(left) + list(right))
    sig = signatures(sets, bands, rows, seed)
    n_left, n_right = len(left), len(right)
    sig_l, sig_r = sig[:n_left], sig[n_left:]
    keys_l, keys_r = band_keys(sig_l, bands, rows), band_keys(sig_r, bands, rows)
    lengths = np.diff(sets.offsets)
    empty_l, empty_r = lengths[:n_left] == 0, lengths[n_left:] == 0
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
        right_idx = np.repeat(np.arange(n_right), counts)
        starts = np.repeat(lo, counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        left_idx = order[starts + within]
        keep = ~empty_l[left_idx]
        found.append(left_idx[keep].astype(np.int64) * n_right + right_idx[keep])
    if not found:
        return []
    pairs = np.unique(np.concatenate(found))
    li, ri = pairs // n_right, pairs % n_right
    # screen by the estimated similarity (the share of equal signature values), generously below the threshold
    agree = np.empty(len(pairs))
    step = 1 << 16
    for s in range(0, len(pairs), step):
        agree[s : s + step] = (sig_l[li[s : s + step]] == sig_r[ri[s : s + step]]).mean(axis=1)
    out = []
    for k in np.flatnonzero(agree >= threshold - 0.2):
        i, j = int(li[k]), n_left + int(ri[k])
        a, b = sets.shingles(i), sets.shingles(j)
        inter = len(np.intersect1d(a, b, assume_unique=True))
        jaccard = inter / (len(a) + len(b) - inter)
        if jaccard >= threshold:
            out.append(NearDuplicate(i, int(ri[k]), jaccard))
    return out
