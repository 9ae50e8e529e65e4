"""The tokenizer of a pretrained encoder (Hugging Face), from a local directory or a hub name.

Texts are encoded by the encoder's fast tokenizer itself (the Rust ``tokenizers`` library, with the truncation
``transformers`` would set): training loads it through ``transformers`` (a hub name, or a directory of any
layout), a model directory reads its ``tokenizer.json`` directly, so predicting imports no ``transformers``.
"""

from __future__ import annotations

import json
import shutil
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
    name: str | None = Field(None, description="Local directory or hub name; null: the model's `pretrained`.",
                             json_schema_extra={"input_path": True})  # workflows fingerprint a local directory's files
    max_length: int = Field(128, ge=8, description="Tokens per text (pair), special tokens included.")
    truncation_side: Literal["right", "left"] = "right"

    def build(self) -> "PretrainedTokenizer":
        return PretrainedTokenizer(self)


class PretrainedTokenizer(Tokenizer):
    spec: PretrainedTokenizerSpec

    def __init__(self, spec: PretrainedTokenizerSpec) -> None:
        super().__init__(spec)
        self.tokenizer_: Any = None  # tokenizers.Tokenizer, truncating as the spec says
        self.special_ids_: dict[str, int | None] = {}
        self.saved_by_: Any = None  # what writes the files: the transformers tokenizer, or the directory loaded from

    @property
    def fitted(self) -> bool:
        return self.tokenizer_ is not None

    def _use(self, backend: Any, special_ids: dict[str, int | None], copy: bool = True) -> None:
        from tokenizers import Tokenizer as Backend

        if copy:  # transformers' tokenizer keeps its own: the truncation settings of this one are ours
            backend = Backend.from_str(backend.to_str())
        backend.no_padding()
        backend.enable_truncation(self.spec.max_length, strategy="longest_first", direction=self.spec.truncation_side)
        self.tokenizer_ = backend
        self.special_ids_ = special_ids

    def fit(self, examples: list[Example]) -> "PretrainedTokenizer":
        """Nothing is learned: this loads the tokenizer named by the spec."""
        if self.spec.name is None:
            raise ConfigError("tokenizer.name: the pretrained tokenizer needs a name (set by the transformer model).")
        hf = load_hf_tokenizer(self.spec.name, self.spec.truncation_side)
        self._use(hf.backend_tokenizer, {"pad": hf.pad_token_id, "sep": hf.sep_token_id})
        self.saved_by_ = hf
        return self

    def encode(self, examples: list[Example]) -> Ragged:
        self._check_fitted()
        texts = [ex.text for ex in examples]
        pairs = [ex.text_pair for ex in examples]
        if any(p is not None for p in pairs):
            if any(p is None for p in pairs):
                raise ConfigError("Some examples have a second text and some do not: give every example a pair, or none.")
            encodings = self.tokenizer_.encode_batch(list(zip(texts, pairs)), add_special_tokens=True)
        else:
            encodings = self.tokenizer_.encode_batch(texts, add_special_tokens=True)
        return Ragged.from_rows([e.ids for e in encodings])

    @property
    def vocab_size(self) -> int:
        self._check_fitted()
        return int(self.tokenizer_.get_vocab_size(with_added_tokens=True))

    @property
    def special_ids(self) -> dict[str, int | None]:
        self._check_fitted()
        return dict(self.special_ids_)

    def save(self, directory: Path) -> None:
        self._check_fitted()
        if isinstance(self.saved_by_, Path):  # loaded from a model directory: its files, as they were
            for file in self.saved_by_.iterdir():
                if file.is_file():
                    shutil.copyfile(file, directory / file.name)
        else:
            self.saved_by_.save_pretrained(str(directory))

    def load(self, directory: Path) -> "PretrainedTokenizer":
        if not (directory / "tokenizer.json").is_file():
            if not any((directory / f).is_file() for f in ("vocab.txt", "tokenizer_config.json")):
                raise ModelDirError(f"{directory}: missing the pretrained tokenizer's files (tokenizer.json).")
            hf = load_hf_tokenizer(str(directory), self.spec.truncation_side)  # an older layout: transformers reads it
            self._use(hf.backend_tokenizer, {"pad": hf.pad_token_id, "sep": hf.sep_token_id})
            self.saved_by_ = directory
            return self
        from tokenizers import Tokenizer as Backend

        backend = Backend.from_file(str(directory / "tokenizer.json"))
        tokens = _special_tokens(directory)
        self._use(backend, {key: backend.token_to_id(tokens[key]) if tokens.get(key) else None for key in ("pad", "sep")}, copy=False)
        self.saved_by_ = directory
        return self


def _special_tokens(directory: Path) -> dict[str, str | None]:
    """The pad and separator tokens a saved tokenizer names (tokenizer_config.json, else special_tokens_map.json)."""
    found: dict[str, str | None] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the later one wins
        file = directory / name
        if not file.is_file():
            continue
        try:
            settings = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelDirError(f"{file} is damaged: not JSON ({str(exc).splitlines()[0]}).") from None
        for key in ("pad", "sep"):
            value = settings.get(f"{key}_token") if isinstance(settings, dict) else None
            value = value.get("content") if isinstance(value, dict) else value
            if isinstance(value, str):
                found[key] = value
    return found
