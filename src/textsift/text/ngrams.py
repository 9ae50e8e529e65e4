"""Hashed word and character n-grams (fastText-style features) for bag-of-n-grams models.

Word n-grams (n >= 2) and character n-grams of words are hashed into ``buckets`` as fastText does.
Fitting then keeps only the features seen in training (at least ``min_count`` times, at most
``max_features`` of them) and gives them compact ids, so the embedding table holds trained rows only
and the model file stays small. A feature never seen in training is dropped at prediction time
(in fastText it would hit an untrained, randomly initialised row). Everything is vectorised with numpy.
"""

from __future__ import annotations

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

_MASK = np.uint64((1 << 48) - 1)
_MULT = np.uint64(1_000_003)
_CHAR_KIND = 15


@registry.tokenizers.register("hashed_ngrams")
class HashedNgramsSpec(TokenizerSpec):
    """Hashed word n-grams (1..``word_ngrams``) and optional character n-grams of each word."""

    type: Literal["hashed_ngrams"] = "hashed_ngrams"
    word_ngrams: int = Field(2, ge=1, le=6, description="Longest word n-gram (1: words only).")
    char_ngrams: tuple[int, int] | None = Field(
        None, description="[min, max] character n-gram lengths of each word (fastText's minn/maxn); null: none."
    )
    buckets: int = Field(2_000_000, ge=1024, description="Hash space of n-grams, as fastText's -bucket.")
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


def _crc(strings: list[str]) -> np.ndarray:
    return np.fromiter((zlib.crc32(s.encode("utf-8")) for s in strings), dtype=np.uint64, count=len(strings))


class HashedNgramTokenizer(Tokenizer):
    spec: HashedNgramsSpec

    def __init__(self, spec: HashedNgramsSpec) -> None:
        super().__init__(spec)
        self._regex = re.compile(spec.pattern)
        self.keys_: np.ndarray | None = None  # sorted feature keys; id = position + 1 (0 is padding)

    @property
    def fitted(self) -> bool:
        return self.keys_ is not None

    # -- feature keys ------------------------------------------------------------------------
    def _words(self, texts: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Unique words, each token's index into them, and tokens per text."""
        index: dict[str, int] = {}
        flat: list[int] = []
        lengths = np.empty(len(texts), dtype=np.int64)
        findall = self._regex.findall
        lower = self.spec.lowercase
        for i, text in enumerate(texts):
            tokens = findall(text.lower() if lower else text)
            lengths[i] = len(tokens)
            flat.extend([index.setdefault(t, len(index)) for t in tokens])
        return list(index), np.asarray(flat, dtype=np.int64), lengths

    def _char_hashes(self, words: list[str]) -> Ragged:
        lo, hi = self.spec.char_ngrams  # type: ignore[misc]
        rows = []
        for w in words:
            w = f"<{w}>"
            grams = [w[i : i + n] for n in range(lo, hi + 1) for i in range(len(w) - n + 1)]
            rows.append(_crc(grams))
        return Ragged.from_rows(rows)

    def feature_keys(self, texts: list[str], salt: int = 0) -> Ragged:
        """Every feature of every text as a 64-bit key: (salt, kind, hash)."""
        spec = self.spec
        words, flat, lengths = self._words(texts)
        n_docs = len(texts)
        doc = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
        h = _crc(words)[flat] if len(flat) else np.zeros(0, np.uint64)
        high = np.uint64(salt << 52)
        parts = [(doc, high | (np.uint64(1) << np.uint64(48)) | h)]
        g = h.copy()
        buckets = np.uint64(spec.buckets)
        for n in range(2, spec.word_ngrams + 1):
            if len(h) < n:
                break
            g = (g[:-1] * _MULT + h[n - 1 :]) & _MASK
            same_doc = doc[: len(g)] == doc[n - 1 :]
            key = high | (np.uint64(n) << np.uint64(48)) | (g % buckets)
            parts.append((doc[: len(g)][same_doc], key[same_doc]))
        if spec.char_ngrams is not None and len(flat):
            chars = self._char_hashes(words).take(flat)
            char_doc = np.repeat(doc, chars.lengths)
            parts.append((char_doc, high | (np.uint64(_CHAR_KIND) << np.uint64(48)) | (chars.values.astype(np.uint64) % buckets)))
        all_doc = np.concatenate([p[0] for p in parts])
        all_key = np.concatenate([p[1] for p in parts])
        order = np.argsort(all_doc, kind="stable")
        offsets = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(np.bincount(all_doc, minlength=n_docs), out=offsets[1:])
        return Ragged(all_key[order].view(np.int64), offsets)

    def _example_keys(self, examples: list[Example]) -> Ragged:
        keys = self.feature_keys([ex.text for ex in examples])
        pair_idx = [i for i, ex in enumerate(examples) if ex.text_pair is not None]
        if not pair_idx:
            return keys
        pair_keys = self.feature_keys([examples[i].text_pair for i in pair_idx], salt=1)  # type: ignore[misc]
        rows = [keys[i] for i in range(len(examples))]
        for j, i in enumerate(pair_idx):
            rows[i] = np.concatenate([rows[i], pair_keys[j]])
        return Ragged.from_rows(rows)

    # -- fit / encode ------------------------------------------------------------------------
    def fit(self, examples: list[Example]) -> "HashedNgramTokenizer":
        keys = self._example_keys(examples).values
        uniq, counts = np.unique(keys, return_counts=True)
        keep = counts >= self.spec.min_count
        uniq, counts = uniq[keep], counts[keep]
        if self.spec.max_features is not None and len(uniq) > self.spec.max_features:
            top = np.argpartition(-counts, self.spec.max_features - 1)[: self.spec.max_features]
            uniq = np.sort(uniq[top])
        self.keys_ = uniq
        return self

    def encode(self, examples: list[Example]) -> Ragged:
        self._check_fitted()
        keys = self._example_keys(examples)
        table = self.keys_
        assert table is not None
        pos = np.searchsorted(table, keys.values)
        pos_c = np.minimum(pos, max(len(table) - 1, 0))
        known = table[pos_c] == keys.values if len(table) else np.zeros(len(pos), bool)
        ids = (pos_c + 1)[known]
        doc = np.repeat(np.arange(len(keys)), keys.lengths)[known]
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        np.cumsum(np.bincount(doc, minlength=len(keys)), out=offsets[1:])
        return Ragged(ids.astype(np.int64), offsets).truncate(self.spec.max_length)

    @property
    def vocab_size(self) -> int:
        self._check_fitted()
        return len(self.keys_) + 1  # type: ignore[arg-type]

    def save(self, directory: Path) -> None:
        self._check_fitted()
        atomic_write_bytes(directory / "ngrams.safetensors", save({"keys": self.keys_}))  # type: ignore[dict-item]

    def load(self, directory: Path) -> "HashedNgramTokenizer":
        path = directory / "ngrams.safetensors"
        if not path.is_file():
            raise ModelDirError(f"{directory}: missing ngrams.safetensors (the n-gram feature table).")
        self.keys_ = load_file(str(path))["keys"]
        return self
