"""A tiktoken byte-level BPE encoding as a tokenizer (``tokenizer.type: tiktoken``; the extra ``textsift[tiktoken]``).

The JAX AI stack's IMDB tutorial tokenizes with tiktoken's ``cl100k_base``. Nothing is learned from the training
texts: the encoding is a fixed table of byte sequences and their ranks, either a named one (``cl100k_base``,
``o200k_base``, ...: tiktoken fetches its file from OpenAI's public blob store once and keeps it in its cache,
``TIKTOKEN_CACHE_DIR``, checking its sha256) or a local ``.tiktoken`` file (tiktoken's format: one base64 token and
its rank per line) with the split pattern of the encoding it is named after (``cl100k_base.tiktoken``) or given in
``pattern``. The table is copied into the model directory
(``tokenizer.tiktoken``, the same format, with ``tiktoken.json`` holding the pattern and the table's sha256), so a
trained model predicts without the file or the network. Ids: 0 padding, 1 an empty text, 2 the separator of text
pairs, then rank + 3. Text is encoded as ordinary text: a special-token string such as ``<|endoftext|>`` in the
data is read as its characters, never as a control token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from textsift import registry
from textsift.data.example import Example
from textsift.errors import ConfigError, ModelDirError
from textsift.text.base import Ragged, Tokenizer, TokenizerSpec, encode_pairs
from textsift.util import atomic_write_text, require_extra

#: ids before the encoding's ranks
PAD, EMPTY, SEP = 0, 1, 2
OFFSET = 3
#: GPT-2's split pattern (tiktoken's ``r50k_pat_str``): the default for a local file of no known encoding's name
R50K_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
CL100K_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""", r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""", r"""\s*[\r\n]+""", r"""\s+(?!\S)""", r"""\s+""",
])
#: the split patterns of tiktoken's named encodings (copied from tiktoken_ext.openai_public, MIT), so that a local copy
#: of one (``cl100k_base.tiktoken``) splits text as the named encoding does without fetching anything
PATTERNS = {"gpt2": R50K_PATTERN, "r50k_base": R50K_PATTERN, "p50k_base": R50K_PATTERN, "p50k_edit": R50K_PATTERN,
            "cl100k_base": CL100K_PATTERN, "o200k_base": O200K_PATTERN, "o200k_harmony": O200K_PATTERN}
TABLE, META = "tokenizer.tiktoken", "tiktoken.json"


@registry.tokenizers.register("tiktoken")
class TiktokenSpec(TokenizerSpec):
    """A tiktoken byte-level BPE encoding (named, or a local .tiktoken file); nothing is learned from the data."""

    type: Literal["tiktoken"] = "tiktoken"
    encoding: str = Field("cl100k_base", description="A tiktoken encoding name (fetched once into tiktoken's cache, "
                          "TIKTOKEN_CACHE_DIR) or the path of a local .tiktoken file.",
                          json_schema_extra={"input_path": True})  # workflows fingerprint the file by content
    pattern: str | None = Field(None, description="For a local file: a named encoding whose split pattern it uses "
                                "(cl100k_base, o200k_base, ...) or a regex; default: that of the encoding the file is named "
                                "after (cl100k_base.tiktoken), else GPT-2's. A named encoding brings its own.")
    max_length: int = Field(256, ge=1)

    def build(self) -> "TiktokenTokenizer":
        return TiktokenTokenizer(self)


def _require() -> Any:
    require_extra("tiktoken", ("tiktoken",), "tokenizer.type tiktoken")
    import tiktoken

    return tiktoken


def parse_table(data: bytes, source: str) -> dict[bytes, int]:
    """The ranks of a .tiktoken file's bytes; a malformed line is a ConfigError naming ``source`` and the line."""
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError
            token, rank = base64.b64decode(parts[0], validate=True), int(parts[1])
        except (ValueError, binascii.Error):
            raise ConfigError(f"{source}, line {number}: expected a base64 token and its rank ('IQ== 0'), got "
                              f"{line[:60]!r}: this is not a tiktoken encoding file.") from None
        if token in ranks or rank < 0:
            raise ConfigError(f"{source}, line {number}: token {parts[0].decode(errors='replace')} "
                              f"{'appears twice' if token in ranks else 'has a negative rank'}: the file is damaged.")
        ranks[token] = rank
    if not ranks:
        raise ConfigError(f"{source}: no tokens: this is not a tiktoken encoding file.")
    if len(set(ranks.values())) != len(ranks):
        raise ConfigError(f"{source}: two tokens share a rank: the file is damaged.")
    return ranks


def dump_table(ranks: dict[bytes, int]) -> str:
    return "".join(f"{base64.b64encode(token).decode()} {rank}\n" for token, rank in sorted(ranks.items(), key=lambda x: x[1]))


class TiktokenTokenizer(Tokenizer):
    spec: TiktokenSpec

    def __init__(self, spec: TiktokenSpec) -> None:
        super().__init__(spec)
        self.ranks_: dict[bytes, int] | None = None
        self.pattern_: str | None = None
        self.name_: str | None = None
        self._encoding: Any = None

    @property
    def fitted(self) -> bool:
        return self.ranks_ is not None

    def _get(self) -> tuple[str, dict[bytes, int], str]:
        """(name, ranks, pattern) of ``spec.encoding``."""
        tiktoken = _require()
        spec = self.spec
        path = Path(spec.encoding).expanduser()
        if path.suffix == ".tiktoken" or path.is_file() or "/" in spec.encoding:
            if not path.is_file():
                raise ConfigError(f"tokenizer.encoding {spec.encoding}: no such file. Give a .tiktoken file or an encoding "
                                  f"name ({', '.join(tiktoken.list_encoding_names())}).")
            pattern = spec.pattern if spec.pattern is not None else path.stem if path.stem in PATTERNS else R50K_PATTERN
            return path.stem, parse_table(path.read_bytes(), str(path)), PATTERNS.get(pattern, pattern)
        if spec.encoding not in tiktoken.list_encoding_names():
            raise ConfigError(f"tokenizer.encoding '{spec.encoding}': not a tiktoken encoding (it has "
                              f"{', '.join(tiktoken.list_encoding_names())}) nor a file on this machine.")
        try:
            encoding = tiktoken.get_encoding(spec.encoding)
        except Exception as exc:  # requests' errors offline, ValueError for a file whose hash does not match
            raise ConfigError(
                f"tokenizer.encoding '{spec.encoding}': tiktoken could not get its file ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:160]}). Offline, copy the encoding's file to this machine as "
                f"{spec.encoding}.tiktoken and set tokenizer.encoding to its path (the split pattern follows from the "
                "name), or set TIKTOKEN_CACHE_DIR to a folder holding tiktoken's cached copy.") from None
        if spec.pattern is not None:
            raise ConfigError(f"tokenizer.pattern: encoding '{spec.encoding}' brings its own split pattern; leave "
                              "tokenizer.pattern out (it is for a local .tiktoken file).")
        return spec.encoding, dict(encoding._mergeable_ranks), encoding._pat_str

    def _set(self, name: str, ranks: dict[bytes, int], pattern: str) -> None:
        tiktoken = _require()
        try:
            self._encoding = tiktoken.Encoding(name=f"textsift-{name}", pat_str=pattern, mergeable_ranks=ranks, special_tokens={})
        except Exception as exc:  # the pattern or the table rejected by tiktoken's core
            raise ConfigError(f"tokenizer (tiktoken '{name}'): {str(exc).splitlines()[0]}. Check tokenizer.pattern and the "
                              "encoding file.") from None
        self.name_, self.ranks_, self.pattern_ = name, ranks, pattern

    def fit(self, examples: list[Example]) -> "TiktokenTokenizer":
        """Read the encoding (the texts teach it nothing)."""
        self._set(*self._get())
        return self

    def encode(self, examples: list[Example]) -> Ragged:
        self._check_fitted()
        enc = self._encoding
        return encode_pairs(examples, lambda texts: [[t + OFFSET for t in ids] for ids in enc.encode_ordinary_batch(texts)],
                            sep=SEP, empty=EMPTY, max_length=self.spec.max_length)

    @property
    def vocab_size(self) -> int:
        self._check_fitted()
        return max(self.ranks_.values()) + OFFSET + 1  # type: ignore[union-attr]

    def _table(self) -> str:
        return dump_table(self.ranks_)  # type: ignore[arg-type]

    def state_fingerprint(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size, "sha256": hashlib.sha256(self._table().encode()).hexdigest(),
                "pattern": self.pattern_}

    def save(self, directory: Path) -> None:
        self._check_fitted()
        table = self._table()
        atomic_write_text(directory / TABLE, table)
        atomic_write_text(directory / META, json.dumps({"encoding": self.name_, "pattern": self.pattern_,
                                                        "sha256": hashlib.sha256(table.encode()).hexdigest()}))

    def load(self, directory: Path) -> "TiktokenTokenizer":
        table, meta = directory / TABLE, directory / META
        for path in (table, meta):
            if not path.is_file():
                raise ModelDirError(f"{directory}: missing {path.name} (the tiktoken encoding). Copy the whole model "
                                    "directory that training wrote, or train again.")
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            name, pattern, digest = info["encoding"], info["pattern"], info["sha256"]
        except (ValueError, KeyError, TypeError):
            raise ModelDirError(f"{meta}: damaged (expected JSON with encoding, pattern, sha256). Copy the whole model "
                                "directory, or train again.") from None
        data = table.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise ModelDirError(f"{table}: its sha256 is not the one {META} records: the encoding file was changed or "
                                "damaged, and its ids would not be the ones the model learned. Copy the whole model directory, "
                                "or train again.")
        try:
            ranks = parse_table(data, str(table))
        except ConfigError as exc:
            raise ModelDirError(str(exc)) from None
        self._set(name, ranks, pattern)
        return self
