"""Text to ids: tokenizers and the one encoding function used by train, evaluate and predict."""

from textsift.text.base import Ragged, Tokenizer, TokenizerSpec

__all__ = ["Ragged", "Tokenizer", "TokenizerSpec"]
