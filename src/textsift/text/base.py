"""Tokenizer interface and the ragged (CSR) array that holds encoded texts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from textsift.config.spec import Spec
from textsift.data.example import Example
from textsift.errors import NotFittedError


@dataclass(frozen=True)
class Ragged:
    """Rows of different lengths in one flat array: row ``i`` is ``values[offsets[i]:offsets[i+1]]``."""

    values: np.ndarray  # int64
    offsets: np.ndarray  # int64, len = rows + 1

    @classmethod
    def from_rows(cls, rows: list[np.ndarray] | list[list[int]]) -> "Ragged":
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]) if rows else np.zeros(0, np.int64)
        return cls(values.astype(np.int64, copy=False), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def take(self, index: np.ndarray) -> "Ragged":
        """The rows at ``index``, in that order (vectorized gather)."""
        index = np.asarray(index, dtype=np.int64)
        starts = self.offsets[index]
        lengths = self.offsets[index + 1] - starts
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        total = int(offsets[-1])
        # position of every output element in the flat input
        row_of = np.repeat(np.arange(len(index)), lengths)
        flat = starts[row_of] + (np.arange(total) - offsets[:-1][row_of])
        return Ragged(self.values[flat], offsets)

    def truncate(self, max_length: int) -> "Ragged":
        lengths = np.minimum(self.lengths, max_length)
        if np.array_equal(lengths, self.lengths):
            return self
        keep = np.arange(len(self.values)) - np.repeat(self.offsets[:-1], self.lengths) < np.repeat(lengths, self.lengths)
        offsets = np.zeros_like(self.offsets)
        np.cumsum(lengths, out=offsets[1:])
        return Ragged(self.values[keep], offsets)


class Tokenizer:
    """A fitted (or fittable) text encoder. Learned state ends with ``_`` and is set by ``fit``."""

    #: ids every tokenizer reserves
    pad_id: ClassVar[int] = 0

    def __init__(self, spec: "TokenizerSpec") -> None:
        self.spec = spec

    @property
    def fitted(self) -> bool:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet: call fit(examples) first.")

    def fit(self, examples: list[Example]) -> "Tokenizer":
        raise NotImplementedError

    def encode(self, examples: list[Example]) -> Ragged:
        raise NotImplementedError

    def fit_encode(self, examples: list[Example]) -> Ragged:
        """``fit`` then ``encode`` the same examples (tokenizers override it to share the work)."""
        return self.fit(examples).encode(examples)

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def save(self, directory: Path) -> None:
        raise NotImplementedError

    def load(self, directory: Path) -> "Tokenizer":
        raise NotImplementedError

    def state_fingerprint(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size}


def encode_pairs(examples: list[Example], encode_batch: Any, *, sep: int, empty: int, max_length: int) -> Ragged:
    """Each example's ids: ``encode_batch`` (a list of texts -> their id lists) of its text, and for a text pair ``sep``
    and the ids of its second text; cut at ``max_length``; a text with no ids reads ``[empty]``."""
    rows = [list(ids) for ids in encode_batch([ex.text for ex in examples])]
    pair_idx = [i for i, ex in enumerate(examples) if ex.text_pair is not None]
    seconds = encode_batch([examples[i].text_pair for i in pair_idx])
    for j, i in enumerate(pair_idx):
        rows[i] = rows[i] + [sep] + list(seconds[j])
    return Ragged.from_rows([r[:max_length] or [empty] for r in rows])


class TokenizerSpec(Spec):
    max_length: int = Field(512, ge=1, description="Keep at most this many ids per text (after pairing).")

    def build(self) -> Tokenizer:
        raise NotImplementedError
