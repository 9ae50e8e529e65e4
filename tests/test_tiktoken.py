"""tokenizer.type tiktoken: a local .tiktoken file or a named encoding, copied into the model directory."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

tiktoken = pytest.importorskip("tiktoken")

import textsift  # noqa: E402
from textsift.config import resolve  # noqa: E402
from textsift.data.example import Example  # noqa: E402
from textsift.errors import ConfigError, ModelDirError  # noqa: E402
from textsift.text.tiktoken_bpe import PATTERNS, R50K_PATTERN, TiktokenSpec, dump_table  # noqa: E402

from conftest import TINY, tiny_config, write_jsonl  # noqa: E402


@pytest.fixture(scope="module")
def encoding_file(tmp_path_factory) -> Path:
    """A real byte-level BPE encoding (256 bytes + 94 merges) learned from the tiny texts by tiktoken's own trainer,
    written in tiktoken's file format: what a user with cl100k_base.tiktoken on disk has, only smaller."""
    from tiktoken._educational import bpe_train

    ranks = bpe_train(" ".join(t for t, _ in TINY) * 3, 350, R50K_PATTERN, visualise=None)
    path = tmp_path_factory.mktemp("enc") / "tiny.tiktoken"
    path.write_text(dump_table(ranks))
    return path


def reference(path: Path) -> object:
    from tiktoken.load import load_tiktoken_bpe

    return tiktoken.Encoding(name="ref", pat_str=R50K_PATTERN, mergeable_ranks=load_tiktoken_bpe(str(path)), special_tokens={})


def test_a_local_encoding_file_encodes_as_tiktoken_does_and_round_trips(encoding_file, tmp_path):
    tok = TiktokenSpec(encoding=str(encoding_file), max_length=12).build()
    texts = ["i love this great film", "Unseen wörds, émojis 🙂 and <|endoftext|>", "", "a " * 40]
    examples = [Example(text=t) for t in texts] + [Example(text="good", text_pair="bad movie")]
    ids = tok.fit(examples[:1]).encode(examples)
    ref = reference(encoding_file)
    assert ids[0].tolist() == [r + 3 for r in ref.encode_ordinary(texts[0])]  # ids = rank + 3 (0 pad, 1 empty, 2 sep)
    assert ids[1].tolist() == [r + 3 for r in ref.encode_ordinary(texts[1])][:12]  # bytes never seen are still bytes
    assert ids[2].tolist() == [1] and len(ids[3]) == 12  # an empty text reads the empty id; cut at max_length
    assert ids[4].tolist() == [r + 3 for r in ref.encode_ordinary("good")] + [2] + [r + 3 for r in ref.encode_ordinary("bad movie")]
    assert tok.vocab_size == 350 + 3
    tok.save(tmp_path)
    assert (tmp_path / "tokenizer.tiktoken").read_bytes() == encoding_file.read_bytes()
    loaded = TiktokenSpec(encoding="/nowhere/gone.tiktoken", max_length=12).build().load(tmp_path)  # the directory's copy, not the file
    assert [r.tolist() for r in loaded.encode(examples)] == [r.tolist() for r in ids]
    assert loaded.state_fingerprint() == tok.state_fingerprint()
    assert tok.state_fingerprint()["sha256"] == hashlib.sha256(encoding_file.read_bytes()).hexdigest()
    # a table edited after training would give other ids than the model learned: refused, not used
    lines = (tmp_path / "tokenizer.tiktoken").read_text().splitlines()
    (tmp_path / "tokenizer.tiktoken").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ModelDirError, match=r"tokenizer.tiktoken: its sha256 is not the one tiktoken.json records"):
        TiktokenSpec().build().load(tmp_path)


@pytest.mark.parametrize("backend", ["torch", "flax"])
def test_a_model_trains_on_tiktoken_ids_and_predicts_from_its_directory_alone(encoding_file, tmp_path, backend):
    """The tutorial's pairing (a tiktoken encoding and a CNN), on both backends; the model directory holds the table,
    so prediction needs neither the original file nor the network."""
    if backend == "flax":
        pytest.importorskip("flax")
    data = write_jsonl(tmp_path / "tiny.jsonl", [{"text": t, "label": l} for t, l in TINY])
    raw = tiny_config(data, "cnn", trainer__epochs=25, backend=backend, model__embed_dim=16, model__channels=16)
    local = tmp_path / "enc.tiktoken"
    local.write_bytes(encoding_file.read_bytes())
    raw["tokenizer"] = {"type": "tiktoken", "encoding": str(local), "max_length": 64}
    result = textsift.train(resolve(raw), tmp_path / "run", report=False)
    assert result.metrics["test/accuracy"] >= 0.9  # the tiny data, learned
    local.unlink()
    predictor = textsift.load(result.model_dir)
    texts = [t for t, _ in TINY]
    assert predictor.predict(texts).labels == [l for _, l in TINY]
    assert json.loads((result.model_dir / "tokenizer" / "tiktoken.json").read_text())["encoding"] == "enc"


def test_a_named_encoding_is_fetched_by_tiktoken_and_offline_the_error_says_what_to_do(encoding_file, tmp_path, monkeypatch):
    import tiktoken.load

    small = reference(encoding_file)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))

    def offline(blobpath: str) -> bytes:  # what requests raises with no route to the blob store (no socket opened here)
        raise ConnectionError(f"Failed to establish a new connection: {blobpath}")

    monkeypatch.setattr(tiktoken.load, "read_file", offline)
    tok = TiktokenSpec(encoding="cl100k_base").build()
    with pytest.raises(ConfigError, match=r"tokenizer.encoding 'cl100k_base': tiktoken could not get its file \(ConnectionError.*"
                                          r"Offline, copy the encoding's file to this machine as cl100k_base.tiktoken"):
        tok.fit([Example(text="x")])
    # with the encoding available (here: tiktoken handing back a small one under that name), the table is copied
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: small)
    tok.fit([Example(text="x")]).save(tmp_path)
    assert json.loads((tmp_path / "tiktoken.json").read_text())["pattern"] == R50K_PATTERN
    assert np.array_equal(TiktokenSpec().build().load(tmp_path).encode([Example(text="i love it")]).values,
                          tok.encode([Example(text="i love it")]).values)


@pytest.mark.parametrize("content,message", [
    ("IQ== 0\nnot base64 at all!\n", r"bad.tiktoken, line 2: expected a base64 token and its rank"),
    ("IQ== 0\nIQ== 1\n", r"bad.tiktoken, line 2: token IQ== appears twice"),
    ("", r"bad.tiktoken: no tokens"),
])
def test_a_malformed_encoding_file_is_named_with_its_line(tmp_path, content, message):
    path = tmp_path / "bad.tiktoken"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        TiktokenSpec(encoding=str(path)).build().fit([])
    with pytest.raises(ConfigError, match=r"tokenizer.encoding .*missing.tiktoken: no such file"):
        TiktokenSpec(encoding=str(tmp_path / "missing.tiktoken")).build().fit([])
    with pytest.raises(ConfigError, match=r"tokenizer.encoding 'cl99k': not a tiktoken encoding \(it has .*cl100k_base"):
        TiktokenSpec(encoding="cl99k").build().fit([])


def test_the_named_encodings_split_patterns_are_tiktokens_own(monkeypatch):
    """The patterns textsift holds for a local copy of a named encoding are the ones tiktoken builds it with (its
    constructors called with the file loaders stubbed: nothing is fetched)."""
    import tiktoken_ext.openai_public as public

    monkeypatch.setattr(public, "load_tiktoken_bpe", lambda *args, **kwargs: {})
    monkeypatch.setattr(public, "data_gym_to_mergeable_bpe_ranks", lambda *args, **kwargs: {})
    assert {name: make()["pat_str"] for name, make in public.ENCODING_CONSTRUCTORS.items()} == PATTERNS


def test_a_local_copy_named_after_an_encoding_splits_as_that_encoding(encoding_file, tmp_path):
    copy = tmp_path / "cl100k_base.tiktoken"
    copy.write_bytes(encoding_file.read_bytes())
    assert TiktokenSpec(encoding=str(copy)).build().fit([]).pattern_ == PATTERNS["cl100k_base"]
    assert TiktokenSpec(encoding=str(copy), pattern="o200k_base").build().fit([]).pattern_ == PATTERNS["o200k_base"]
    assert TiktokenSpec(encoding=str(copy), pattern=r"\w+").build().fit([]).pattern_ == r"\w+"
    assert TiktokenSpec(encoding=str(encoding_file)).build().fit([]).pattern_ == R50K_PATTERN  # tiny.tiktoken: GPT-2's
