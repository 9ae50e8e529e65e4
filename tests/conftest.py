"""Tiny, offline fixtures shared by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textsift.config import load_builtins

load_builtins()

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"

# 16 short texts, two clearly separable classes, for overfitting and round-trip tests.
TINY = [
    ("what a wonderful happy day", "pos"), ("i love this great film", "pos"), ("superb acting and lovely music", "pos"),
    ("a delightful joyful story", "pos"), ("brilliant and charming work", "pos"), ("happy people smile a lot", "pos"),
    ("great fun for the family", "pos"), ("an excellent heartwarming movie", "pos"),
    ("what a terrible sad day", "neg"), ("i hate this awful film", "neg"), ("poor acting and dreadful music", "neg"),
    ("a boring miserable story", "neg"), ("horrible and dull work", "neg"), ("angry people shout a lot", "neg"),
    ("bad news for the family", "neg"), ("an awful depressing movie", "neg"),
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _protobuf_fields(data: bytes) -> list[int]:
    """The field numbers of a protobuf message's top level (ONNX files are a ModelProto); ValueError if malformed."""
    fields, i = [], 0

    def varint() -> int:
        nonlocal i
        value, shift = 0, 0
        while True:
            if i >= len(data) or shift > 63:
                raise ValueError("truncated varint")
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            varint()
        elif wire == 1:
            i += 8
        elif wire == 2:
            length = varint()  # (not `i += varint()`: that adds to the i read before varint moved it)
            i += length
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"wire type {wire}")
        if i > len(data):
            raise ValueError("field runs past the end")
        fields.append(number)
    return fields


def parse_safe_file(path: Path) -> None:
    """Parse ``path`` as what its name says (safetensors, JSON, JSON Lines, YAML, text, CSV, HTML, ONNX, PNG):
    fails for a file of any other kind, and for a pickle or a ``torch.save`` zip under a safe name."""
    import csv

    import yaml

    name = path.name
    data = path.read_bytes()
    if name.endswith(".safetensors"):
        from safetensors import safe_open

        length = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + length])  # a zip or pickle has no JSON header here
        assert isinstance(header, dict), path
        with safe_open(str(path), framework="numpy") as f:
            for key in f.keys():
                f.get_tensor(key)
    elif name.endswith(".json"):
        json.loads(data.decode("utf-8"))
    elif name.endswith(".jsonl"):
        for line in data.decode("utf-8").splitlines():
            json.loads(line)
    elif name.endswith((".yaml", ".yml")):
        yaml.safe_load(data.decode("utf-8"))
    elif name.endswith(".csv"):
        list(csv.reader(data.decode("utf-8").splitlines()))
    elif name.endswith((".txt", ".log", ".html", ".md")):
        assert b"\x00" not in data, f"{path}: binary data in a text file"
        data.decode("utf-8")
    elif name.endswith(".png"):
        from PIL import Image

        with Image.open(path) as image:
            assert image.format == "PNG", path
            image.verify()
    elif name.endswith(".onnx"):
        assert 7 in _protobuf_fields(data), f"{path}: not an ONNX model (no graph)"
    else:
        raise AssertionError(f"{path}: not a safetensors, JSON, YAML, text, ONNX or PNG file")


def assert_only_safe_files(directory: Path) -> list[Path]:
    """Every file under ``directory`` parses as safetensors, JSON, YAML, text, ONNX or PNG: never a pickle."""
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    for path in files:
        try:
            parse_safe_file(path)
        except Exception as exc:  # noqa: BLE001 - any failure to parse is the finding
            raise AssertionError(f"{path} does not parse as its name says: {type(exc).__name__}: {exc}") from None
    return files


@pytest.fixture
def tiny_jsonl(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "tiny.jsonl", [{"text": t, "label": l} for t, l in TINY])


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    lines = ["text,label"] + [f'"{t}",{l}' for t, l in TINY]
    path = tmp_path / "tiny.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_config(train: Path, model: str = "bag", **overrides: object) -> dict:
    """A raw config that trains fast on the tiny data (validation = train, so val metrics exist)."""
    raw: dict = {
        "data": {"train": str(train), "validation": str(train), "test": str(train)},
        "model": {"type": model},
        "trainer": {"epochs": 30, "early_stopping": None, "batch_size": 8},
    }
    for key, value in overrides.items():
        node = raw
        *parents, last = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return raw


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny random BERT (2 layers, hidden 32) and a WordPiece tokenizer trained here, saved like a hub model."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    directory = tmp_path_factory.mktemp("tiny_bert")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    texts = [t for t, _ in TINY] + ["the cat sat on a mat", "stocks fell today", "a dog barks loudly"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(str(directory))
    config = BertConfig(vocab_size=len(fast), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(directory))
    return directory


def model_settings(name: str, tiny_bert_dir: Path | None) -> dict:
    """A model's config with only its required settings filled (a transformer needs an encoder)."""
    if name == "transformer":
        return {"type": name, "pretrained": str(tiny_bert_dir)}
    return {"type": name}


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A throwaway PostgreSQL server (Debian's package; installed here with apt-get when missing) on a Unix socket."""
    from postgres import start_postgres

    directory = tmp_path_factory.mktemp("pg")
    try:
        url, stop = start_postgres(directory)
    except RuntimeError as exc:
        pytest.fail(str(exc))  # a missing server is a failure, never a skip
    yield url
    stop()
