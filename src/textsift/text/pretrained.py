"""The tokenizer of a pretrained encoder (Hugging Face), from a local directory or a hub name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from textsift import registry
from textsift.data.example import Example
from textsift.errors import ConfigError, ModelDirError
from textsift.text.base import Ragged, Tokenizer, TokenizerSpec


def load_hf_tokenizer(name: str, truncation_side: str = "right") -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"Cannot load the tokenizer of '{name}': {str(exc).splitlines()[0]} "
            "Give a local directory (with tokenizer.json or vocab.txt) or a hub name reachable from here."
        ) from None
    if not tok.is_fast:
        raise ConfigError(f"'{name}' has no fast (Rust) tokenizer; textsift needs one for batched encoding.")
    tok.truncation_side = truncation_side
    return tok


@registry.tokenizers.register("pretrained")
class PretrainedTokenizerSpec(TokenizerSpec):
    """A pretrained encoder's own tokenizer. ``name`` defaults to the model's ``pretrained``."""

    type: Literal["pretrained"] = "pretrained"
    name: str | None = Field(None, description="Local directory or hub name; null: the model's `pretrained`.")
    max_length: int = Field(128, ge=8, description="Tokens per text (pair), special tokens included.")
    truncation_side: Literal["right", "left"] = "right"

    def build(self) -> "PretrainedTokenizer":
        return PretrainedTokenizer(self)


class PretrainedTokenizer(Tokenizer):
    spec: PretrainedTokenizerSpec

    def __init__(self, spec: PretrainedTokenizerSpec) -> None:
        super().__init__(spec)
        self.tokenizer_: Any = None

    @property
    def fitted(self) -> bool:
        return self.tokenizer_ is not None

    def fit(self, examples: list[Example]) -> "PretrainedTokenizer":
        """Nothing is learned: this loads the tokenizer named by the spec."""
        if self.spec.name is None:
            raise ConfigError("tokenizer.name: the pretrained tokenizer needs a name (set by the transformer model).")
        self.tokenizer_ = load_hf_tokenizer(self.spec.name, self.spec.truncation_side)
        return self

    def encode(self, examples: list[Example]) -> Ragged:
        self._check_fitted()
        texts = [ex.text for ex in examples]
        pairs = [ex.text_pair for ex in examples]
        kwargs = {"truncation": True, "max_length": self.spec.max_length, "return_attention_mask": False,
                  "return_token_type_ids": False}
        if any(p is not None for p in pairs):
            if any(p is None for p in pairs):
                raise ConfigError("Some examples have a second text and some do not: give every example a pair, or none.")
            enc = self.tokenizer_(texts, pairs, **kwargs)
        else:
            enc = self.tokenizer_(texts, **kwargs)
        return Ragged.from_rows(enc["input_ids"])

    @property
    def vocab_size(self) -> int:
        self._check_fitted()
        return len(self.tokenizer_)

    @property
    def special_ids(self) -> dict[str, int | None]:
        self._check_fitted()
        return {"pad": self.tokenizer_.pad_token_id, "sep": self.tokenizer_.sep_token_id}

    def save(self, directory: Path) -> None:
        self._check_fitted()
        self.tokenizer_.save_pretrained(str(directory))

    def load(self, directory: Path) -> "PretrainedTokenizer":
        if not any((directory / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
            raise ModelDirError(f"{directory}: missing the pretrained tokenizer's files (tokenizer.json).")
        self.tokenizer_ = load_hf_tokenizer(str(directory), self.spec.truncation_side)
        return self
