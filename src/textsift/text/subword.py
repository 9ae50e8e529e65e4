"""Subword tokenizers (BPE or WordPiece) trained on the training texts with the `tokenizers` library."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from textsift import registry
from textsift.data.example import Example
from textsift.errors import ModelDirError
from textsift.text.base import Ragged, Tokenizer, TokenizerSpec, encode_pairs
from textsift.util import atomic_write_text

SPECIALS = ["<pad>", "<unk>", "<sep>"]


class SubwordSpec(TokenizerSpec):
    vocab_size: int = Field(8000, ge=100, description="Target vocabulary size, special tokens included.")
    min_frequency: int = Field(2, ge=1)
    lowercase: bool = True
    max_length: int = Field(256, ge=1)

    def build(self) -> "SubwordTokenizer":
        return SubwordTokenizer(self)


@registry.tokenizers.register("bpe")
class BpeSpec(SubwordSpec):
    """Byte-pair encoding learned from the training texts."""

    type: Literal["bpe"] = "bpe"


@registry.tokenizers.register("wordpiece")
class WordPieceSpec(SubwordSpec):
    """WordPiece (BERT-style ``##`` continuations) learned from the training texts."""

    type: Literal["wordpiece"] = "wordpiece"


class SubwordTokenizer(Tokenizer):
    spec: SubwordSpec

    def __init__(self, spec: SubwordSpec) -> None:
        super().__init__(spec)
        self.tokenizer_: HFTokenizer | None = None

    @property
    def fitted(self) -> bool:
        return self.tokenizer_ is not None

    def fit(self, examples: list[Example]) -> "SubwordTokenizer":
        spec = self.spec
        if spec.type == "wordpiece":
            tok = HFTokenizer(models.WordPiece(unk_token="<unk>"))
            trainer = trainers.WordPieceTrainer(
                vocab_size=spec.vocab_size, min_frequency=spec.min_frequency, special_tokens=SPECIALS
            )
            tok.decoder = decoders.WordPiece()
        else:
            tok = HFTokenizer(models.BPE(unk_token="<unk>"))
            trainer = trainers.BpeTrainer(
                vocab_size=spec.vocab_size, min_frequency=spec.min_frequency, special_tokens=SPECIALS
            )
        norms = [normalizers.NFKC()] + ([normalizers.Lowercase()] if spec.lowercase else [])
        tok.normalizer = normalizers.Sequence(norms)
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])

        def texts():
            for ex in examples:
                yield ex.text
                if ex.text_pair is not None:
                    yield ex.text_pair

        tok.train_from_iterator(texts(), trainer=trainer, length=len(examples))
        self.tokenizer_ = tok
        return self

    def encode(self, examples: list[Example]) -> Ragged:
        self._check_fitted()
        tok = self.tokenizer_
        assert tok is not None
        return encode_pairs(examples, lambda texts: [enc.ids for enc in tok.encode_batch(texts, add_special_tokens=False)],
                            sep=tok.token_to_id("<sep>"), empty=tok.token_to_id("<unk>"), max_length=self.spec.max_length)

    @property
    def vocab_size(self) -> int:
        self._check_fitted()
        return self.tokenizer_.get_vocab_size()  # type: ignore[union-attr]

    def save(self, directory: Path) -> None:
        self._check_fitted()
        atomic_write_text(directory / "tokenizer.json", self.tokenizer_.to_str())  # type: ignore[union-attr]

    def load(self, directory: Path) -> "SubwordTokenizer":
        path = directory / "tokenizer.json"
        if not path.is_file():
            raise ModelDirError(f"{directory}: missing tokenizer.json (the subword tokenizer).")
        self.tokenizer_ = HFTokenizer.from_file(str(path))
        return self
