"""Hashed word and character n-grams (fastText-style features) for bag-of-n-grams models.

Word n-grams (n >= 2) and character n-grams of words are hashed into ``buckets`` as fastText does.
Fitting then keeps only the features seen in training (at least ``min_count`` times, at most
``max_features`` of them) and gives them compact rows through a dense id -> row array, so the
embedding table holds trained rows only and the model file stays small. A feature never seen in
training is dropped at prediction time (in fastText it would hit an untrained, randomly initialised
row). Only C-level loops touch individual tokens; the rest is vectorised numpy, O(n) without sorting.
"""

from __future__ import annotations

import itertools
import re
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator
from safetensors.numpy import load_file, save

from textsift import registry
from textsift.data.example import Example
from textsift.errors import ModelDirError
from textsift.text.base import Ragged, Tokenizer, TokenizerSpec
from textsift.util import atomic_write_bytes

_MULT = np.uint64(1_000_003)
#: words hash into their own space of this many buckets (fastText keeps an exact word vocabulary;
#: 2**24 buckets make word collisions as rare as that, at 64 MB of int32 lookup table)
WORD_BUCKETS = 1 << 24
_PAIR_SEED = 0x9E3779B9


@registry.tokenizers.register("hashed_ngrams")
class HashedNgramsSpec(TokenizerSpec):
    """Hashed word n-grams (1..``word_ngrams``) and optional character n-grams of each word.

    Feature ids: a word is its hash in a space of 2**24; an n-gram (word n-grams, n >= 2, and character
    n-grams) is hashed into ``buckets`` after that. Fitting keeps the ids seen in training.
    """

    type: Literal["hashed_ngrams"] = "hashed_ngrams"
    word_ngrams: int = Field(2, ge=1, le=6, description="Longest word n-gram (1: words only).")
    char_ngrams: tuple[int, int] | None = Field(
        None, description="[min, max] character n-gram lengths of each word (fastText's minn/maxn); null: none."
    )
    buckets: int = Field(2_000_000, ge=1024, description="Hash space of n-grams, as fastText's -bucket.")
    char_space: Literal["shared", "separate"] = Field(
        "shared", description="Character n-grams hash into the word n-grams' buckets (fastText) or a space of their own "
        "after them, so that a model can tell the two kinds apart (the linear model normalises each kind on its own).",
    )
    min_count: int = Field(1, ge=1, description="Keep features seen at least this often in training.")
    max_features: int | None = Field(
        2_000_000, ge=1, description="Keep at most this many features (the most frequent)."
    )
    lowercase: bool = True
    pattern: str = Field(r"\w+|[^\w\s]", description="Regex whose matches are the words.")
    max_length: int = Field(100_000, ge=1, description="Keep at most this many features per text.")

    @field_validator("pattern")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _char_range(self) -> "HashedNgramsSpec":
        if self.char_ngrams is not None:
            lo, hi = self.char_ngrams
            if not 1 <= lo <= hi:
                raise ValueError(f"char_ngrams must be [min, max] with 1 <= min <= max, got {list(self.char_ngrams)}")
        return self

    def build(self) -> "HashedNgramTokenizer":
        return HashedNgramTokenizer(self)


def _crc(strings: list[str], seed: int = 0) -> np.ndarray:
    return np.fromiter((zlib.crc32(w.encode("utf-8"), seed) for w in strings), dtype=np.uint64, count=len(strings))


def _interleave(parts: list[tuple[np.ndarray, np.ndarray]], n_docs: int) -> Ragged:
    """Merge (doc, value) parts, each sorted by doc, into one ragged array grouped by doc (O(n), no sort)."""
    counts = [np.bincount(doc, minlength=n_docs) for doc, _ in parts]
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(np.sum(counts, axis=0), out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.int64)
    before = offsets[:-1].copy()  # where the next part starts inside each doc
    for (doc, values), count in zip(parts, counts):
        part_offsets = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(count, out=part_offsets[1:])
        out[before[doc] + (np.arange(len(doc)) - part_offsets[doc])] = values
        before += count
    return Ragged(out, offsets)


class HashedNgramTokenizer(Tokenizer):
    spec: HashedNgramsSpec

    def __init__(self, spec: HashedNgramsSpec) -> None:
        super().__init__(spec)
        self._regex = re.compile(spec.pattern)
        self.kept_: np.ndarray | None = None  # feature ids kept by fit, in row order (row = position + 1)
        self._rows: np.ndarray | None = None  # dense: feature id -> row (0: not kept)

    @property
    def fitted(self) -> bool:
        return self.kept_ is not None

    @property
    def space(self) -> int:
        return WORD_BUCKETS + self.spec.buckets * (2 if self.spec.char_space == "separate" else 1)

    @property
    def char_offset(self) -> int | None:
        """The first feature id of character n-grams when they have a space of their own (else None)."""
        return WORD_BUCKETS + self.spec.buckets if self.spec.char_space == "separate" and self.spec.char_ngrams else None

    def first_row_at_or_above(self, feature_id: int) -> int:
        """The row of the first kept feature whose id is >= ``feature_id`` (rows start at 1)."""
        self._check_fitted()
        return int(np.searchsorted(self.kept_, feature_id)) + 1  # type: ignore[arg-type]

    # -- feature ids ---------------------------------------------------------------------------
    def _words(self, texts: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Unique words, each token's index into them, and tokens per text (C-level loops only)."""
        findall = self._regex.findall
        docs = [findall(t.lower()) for t in texts] if self.spec.lowercase else [findall(t) for t in texts]
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        flat = list(itertools.chain.from_iterable(docs))
        index = dict.fromkeys(flat)
        for i, word in enumerate(index):
            index[word] = i
        ids = np.fromiter(map(index.__getitem__, flat), dtype=np.int64, count=len(flat))
        return list(index), ids, lengths

    def _char_hashes(self, words: list[str], seed: int) -> Ragged:
        lo, hi = self.spec.char_ngrams  # type: ignore[misc]
        rows = []
        for w in words:
            w = f"<{w}>"
            rows.append(_crc([w[i : i + n] for n in range(lo, hi + 1) for i in range(len(w) - n + 1)], seed))
        return Ragged.from_rows(rows)

    def feature_ids(self, texts: list[str], pair: bool = False) -> Ragged:
        """Every feature id of every text (unfitted: ids in the full hash space)."""
        spec = self.spec
        seed = _PAIR_SEED if pair else 0
        words, flat, lengths = self._words(texts)
        n_docs = len(texts)
        doc = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
        h = _crc(words, seed)[flat] if len(flat) else np.zeros(0, np.uint64)
        parts = [(doc, (h % np.uint64(WORD_BUCKETS)).astype(np.int64))]
        buckets = np.uint64(spec.buckets)
        g = h
        for n in range(2, spec.word_ngrams + 1):
            if len(h) < n:
                break
            g = g[:-1] * _MULT + h[n - 1 :]  # wraps modulo 2**64, like fastText's hash combination
            same_doc = doc[: len(g)] == doc[n - 1 :]
            ids = (g[same_doc] % buckets).astype(np.int64) + WORD_BUCKETS
            parts.append((doc[: len(g)][same_doc], ids))
        if spec.char_ngrams is not None and len(flat):
            chars = self._char_hashes(words, seed).take(flat)
            ids = (chars.values.astype(np.uint64) % buckets).astype(np.int64) + (self.char_offset or WORD_BUCKETS)
            parts.append((np.repeat(doc, chars.lengths), ids))
        return _interleave(parts, n_docs)

    def _example_ids(self, examples: list[Example]) -> Ragged:
        ids = self.feature_ids([ex.text for ex in examples])
        pair_idx = np.array([i for i, ex in enumerate(examples) if ex.text_pair is not None], dtype=np.int64)
        if not len(pair_idx):
            return ids
        pairs = self.feature_ids([examples[i].text_pair for i in pair_idx], pair=True)  # type: ignore[misc]
        pair_doc = np.repeat(pair_idx, pairs.lengths)
        first_doc = np.repeat(np.arange(len(examples)), ids.lengths)
        return _interleave([(first_doc, ids.values), (pair_doc, pairs.values)], len(examples))

    # -- fit / encode ------------------------------------------------------------------------
    def _fit_ids(self, ids: Ragged) -> None:
        if len(ids.values) * 8 > self.space:  # many features: counting over the whole space is O(n)
            counts = np.bincount(ids.values, minlength=self.space)
            kept = np.flatnonzero(counts >= self.spec.min_count)
            counts = counts[kept]
        else:  # few: sorting them is cheaper than touching the whole space
            kept, counts = np.unique(ids.values, return_counts=True)
            keep = counts >= self.spec.min_count
            kept, counts = kept[keep], counts[keep]
        if self.spec.max_features is not None and len(kept) > self.spec.max_features:
            top = np.argpartition(-counts, self.spec.max_features - 1)[: self.spec.max_features]
            kept = np.sort(kept[top])
        self._set_kept(kept)

    def _set_kept(self, kept: np.ndarray) -> None:
        self.kept_ = kept.astype(np.int64)
        self._rows = None  # the dense id -> row array, built on first use

    def _row_table(self) -> np.ndarray:
        if self._rows is None:
            rows = np.zeros(self.space, dtype=np.int32)  # calloc: pages are touched only where written
            rows[self.kept_] = np.arange(1, len(self.kept_) + 1, dtype=np.int32)  # type: ignore[arg-type]
            self._rows = rows
        return self._rows

    def _map(self, ids: Ragged) -> Ragged:
        rows = self._row_table()[ids.values]
        known = rows > 0
        doc = np.repeat(np.arange(len(ids)), ids.lengths)[known]
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(doc, minlength=len(ids)), out=offsets[1:])
        return Ragged(rows[known].astype(np.int64), offsets).truncate(self.spec.max_length)

    def fit(self, examples: list[Example]) -> "HashedNgramTokenizer":
        self._fit_ids(self._example_ids(examples))
        return self

    def fit_encode(self, examples: list[Example]) -> Ragged:
        ids = self._example_ids(examples)
        self._fit_ids(ids)
        return self._map(ids)

    def encode(self, examples: list[Example]) -> Ragged:
        self._check_fitted()
        return self._map(self._example_ids(examples))

    @property
    def vocab_size(self) -> int:
        self._check_fitted()
        return len(self.kept_) + 1  # type: ignore[arg-type]

    def save(self, directory: Path) -> None:
        self._check_fitted()
        atomic_write_bytes(directory / "ngrams.safetensors", save({"kept": self.kept_}))  # type: ignore[dict-item]

    def load(self, directory: Path) -> "HashedNgramTokenizer":
        path = directory / "ngrams.safetensors"
        if not path.is_file():
            raise ModelDirError(f"{directory}: missing ngrams.safetensors (the n-gram feature table).")
        self._set_kept(load_file(str(path))["kept"])
        return self
