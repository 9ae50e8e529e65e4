"""A regex word tokenizer with a vocabulary: ids in text order, for sequence models."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from textsift import registry
from textsift.data.example import Example
from textsift.errors import ModelDirError
from textsift.text.base import Ragged, Tokenizer, TokenizerSpec
from textsift.util import atomic_write_text

PAD, UNK, SEP = "<pad>", "<unk>", "<sep>"


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None


@registry.tokenizers.register("words")
class WordsSpec(TokenizerSpec):
    """Words and punctuation by regular expression, with a vocabulary built from the training texts."""

    type: Literal["words"] = "words"
    pattern: str = Field(r"\w+|[^\w\s]", description="Regex whose matches are the tokens.")
    lowercase: bool = True
    min_frequency: int = Field(1, ge=1, description="Keep words seen at least this often in training.")
    max_size: int | None = Field(50_000, ge=1, description="Keep at most this many words (most frequent first).")
    max_length: int = Field(256, ge=1)

    @field_validator("pattern")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        _compile(value)
        return value

    def build(self) -> "WordTokenizer":
        return WordTokenizer(self)


class WordTokenizer(Tokenizer):
    spec: WordsSpec

    def __init__(self, spec: WordsSpec) -> None:
        super().__init__(spec)
        self._regex = _compile(spec.pattern)
        self.vocab_: dict[str, int] | None = None

    @property
    def fitted(self) -> bool:
        return self.vocab_ is not None

    def tokens(self, text: str) -> list[str]:
        return self._regex.findall(text.lower() if self.spec.lowercase else text)

    def fit(self, examples: list[Example]) -> "WordTokenizer":
        counts: Counter[str] = Counter()
        for ex in examples:
            counts.update(self.tokens(ex.text))
            if ex.text_pair is not None:
                counts.update(self.tokens(ex.text_pair))
        words = [w for w, c in counts.most_common(self.spec.max_size) if c >= self.spec.min_frequency]
        self.vocab_ = {PAD: 0, UNK: 1, SEP: 2}
        for w in sorted(words, key=lambda w: (-counts[w], w)):
            self.vocab_.setdefault(w, len(self.vocab_))
        return self

    def encode(self, examples: list[Example]) -> Ragged:
        self._check_fitted()
        vocab = self.vocab_
        assert vocab is not None
        unk, sep = vocab[UNK], vocab[SEP]
        rows = []
        for ex in examples:
            ids = [vocab.get(t, unk) for t in self.tokens(ex.text)]
            if ex.text_pair is not None:
                ids += [sep] + [vocab.get(t, unk) for t in self.tokens(ex.text_pair)]
            rows.append(ids[: self.spec.max_length] or [unk])
        return Ragged.from_rows(rows)

    @property
    def vocab_size(self) -> int:
        self._check_fitted()
        return len(self.vocab_)  # type: ignore[arg-type]

    def save(self, directory: Path) -> None:
        self._check_fitted()
        atomic_write_text(directory / "vocab.json", json.dumps(self.vocab_, ensure_ascii=False))

    def load(self, directory: Path) -> "WordTokenizer":
        path = directory / "vocab.json"
        if not path.is_file():
            raise ModelDirError(f"{directory}: missing vocab.json (the word tokenizer's vocabulary).")
        self.vocab_ = json.loads(path.read_text(encoding="utf-8"))
        return self


