"""Property-based tests: whatever a file holds, a reader gives examples or one :class:`DataError` line.

Every reader is driven with generated files: random bytes, text in several encodings (with and without a
byte order mark), quoting, delimiters, odd and duplicate column names, huge and empty fields, missing
columns, damaged gzip and Parquet data. Any exception other than a one-line DataError fails the test.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, event, given, settings, strategies as st

from textsift.data.example import Example
from textsift.data.readers import AutoReader, CsvReader, JsonlReader, ParquetReader, ReadOptions, TsvReader
from textsift.errors import DataError

CASES = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16", "ascii"]
COLUMN_NAMES = st.sampled_from(["text", "label", "id", "second", "Text", " text ", "", "label,x", 'q"uote', "é", "\ufefftext"])
FIELD = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "   ", "a,b", 'say "hi"', "line\nbreak", "tab\there", "\r", "\x00", "é€😀"]),
    st.builds(lambda n: "x" * n, st.sampled_from([131_073, 200_000])),  # over the csv module's default field limit
)
OPTIONS = st.builds(
    ReadOptions,
    require_labels=st.booleans(),
    on_empty=st.sampled_from(["error", "keep"]),
    keep_columns=st.one_of(st.just(()), st.just(()), st.lists(COLUMN_NAMES, max_size=2).map(tuple)),
)


def check(reader, path: Path, options: ReadOptions) -> None:
    """The property: parsed examples, or a DataError of one line; nothing else."""
    try:
        examples = reader.read(path, options=options)
    except DataError as exc:
        message = str(exc)
        event("DataError: " + message.split(":")[1 if message.startswith("/") else 0].strip()[:12])
        assert message and "\n" not in message and "\r" not in message, repr(message)
        return
    event(f"parsed {min(len(examples), 3)}+ examples")
    for ex in examples:
        assert isinstance(ex, Example) and isinstance(ex.text, str) and ex.row >= 1
        assert ex.label is None or isinstance(ex.label, str)
        assert ex.labels is None or all(isinstance(x, str) for x in ex.labels)
        if options.require_labels:
            assert ex.label is not None or ex.labels is not None
        if options.on_empty == "error":
            assert ex.text.strip()


def encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace") if codecs.lookup(encoding).name != "ascii" else text.encode("ascii", "replace")


@st.composite
def delimited(draw, delimiter: str) -> bytes:
    columns = draw(st.one_of(st.just(["text", "label"]), st.just(["id", "text", "label", "second"]),
                             st.lists(COLUMN_NAMES, min_size=0, max_size=4)))
    width = len(columns) if draw(st.integers(0, 4)) else draw(st.integers(0, 5))  # mostly rows as wide as the header
    rows = draw(st.lists(st.lists(FIELD, min_size=width, max_size=width), max_size=6))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONE]))
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, quoting=quoting, escapechar="\\", lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    try:
        if draw(st.integers(0, 4)):  # mostly with a header row
            writer.writerow(columns)
        writer.writerows(rows)
        text = buf.getvalue()
    except csv.Error:
        text = delimiter.join(columns) + "\n"
    if not draw(st.integers(0, 3)):  # hand-made damage: a stray quote, a cut line
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from(['"', "", "\n", delimiter])) + text[cut:]
    encoding = draw(st.sampled_from(ENCODINGS))
    data = encode(text, encoding)
    if draw(st.integers(0, 9)) == 0:
        data = draw(st.binary(max_size=200)) + data
    return data, encoding


@st.composite
def jsonl_bytes(draw) -> bytes:
    value = st.one_of(FIELD, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(),
                      st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
    record = st.one_of(st.fixed_dictionaries({"text": FIELD, "label": st.one_of(st.text(max_size=5), value)}, optional={"id": value, "second": value}),
                       st.dictionaries(COLUMN_NAMES, value, max_size=4))
    lines = draw(st.lists(st.one_of(record.map(json.dumps), st.sampled_from(["", "[1, 2]", "{", "null", '"text"', "[" * 2000]),
                                    st.text(max_size=20)), max_size=6))
    encoding = draw(st.sampled_from(ENCODINGS))
    return encode("\n".join(lines), encoding), encoding


@st.composite
def parquet_bytes(draw) -> bytes:
    n = draw(st.integers(0, 5))
    types = {
        "string": (pa.string(), st.one_of(st.none(), FIELD)),
        "int": (pa.int64(), st.one_of(st.none(), st.integers(-10, 10))),
        "list": (pa.list_(pa.string()), st.one_of(st.none(), st.lists(st.text(max_size=4), max_size=3))),
        "binary": (pa.binary(), st.binary(max_size=8)),
        "struct": (pa.struct([("a", pa.int64())]), st.builds(lambda a: {"a": a}, st.integers(0, 3))),
        "float": (pa.float64(), st.floats(allow_nan=True)),
    }
    names = draw(st.one_of(st.just(["text", "label"]), st.just(["text", "label", "id"]),
                           st.lists(COLUMN_NAMES, min_size=1, max_size=3, unique=True)))
    arrays = []
    for _ in names:
        kind = draw(st.sampled_from(["string"] * 6 + sorted(types)))
        typ, values = types[kind]
        arrays.append(pa.array([draw(values) for _ in range(n)], type=typ))
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, names=names), buf)
    data = buf.getvalue()
    mode = draw(st.integers(0, 5))
    if mode == 0:  # damaged: cut or overwritten bytes
        cut = draw(st.integers(0, len(data)))
        data = data[:cut]
    elif mode == 1:
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at + 16:]
    return data, "utf-8"


_DIR = tempfile.TemporaryDirectory(prefix="textsift-fuzz-")


def random_bytes() -> st.SearchStrategy:
    return st.tuples(st.binary(max_size=300), st.sampled_from(ENCODINGS))


def pick(payload: tuple[bytes, str], other: str, same: bool) -> tuple[bytes, str]:
    """The file's bytes, and the encoding to read them with: mostly the one they were written in."""
    data, encoding = payload
    return data, (encoding if same else other)


def write(data: bytes, suffix: str, gz: bool = False) -> Path:
    """The case's file (one file at a time: each case overwrites the last)."""
    for old in Path(_DIR.name).iterdir():
        old.unlink()
    path = Path(_DIR.name) / f"data{suffix}{'.gz' if gz else ''}"
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@CASES
@given(payload=st.one_of(delimited(","), random_bytes()), options=OPTIONS, other=st.sampled_from(ENCODINGS + ["no-such-codec"]),
       same=st.integers(0, 4).map(bool), pair=st.sampled_from([None, "second"]), header=st.integers(0, 4).map(bool), gz=st.booleans())
def test_csv_reader(payload, options, other, same, pair, header, gz):
    data, encoding = pick(payload, other, same)
    check(CsvReader(encoding=encoding, text_pair_column=pair, header=header, text_column="text" if header else "0",
                    label_column="label" if header else "1"), write(data, ".csv", gz), options)


@CASES
@given(payload=st.one_of(delimited("\t"), random_bytes()), options=OPTIONS, other=st.sampled_from(ENCODINGS),
       same=st.integers(0, 4).map(bool), delimiter=st.sampled_from([None, None, None, "\t", ";", "ab", "\n"]), gz=st.booleans())
def test_tsv_reader(payload, options, other, same, delimiter, gz):
    data, encoding = pick(payload, other, same)
    check(TsvReader(encoding=encoding, delimiter=delimiter), write(data, ".tsv", gz), options)


@CASES
@given(payload=st.one_of(jsonl_bytes(), random_bytes()), options=OPTIONS, other=st.sampled_from(ENCODINGS),
       same=st.integers(0, 4).map(bool), gz=st.booleans())
def test_jsonl_reader(payload, options, other, same, gz):
    data, encoding = pick(payload, other, same)
    check(JsonlReader(encoding=encoding), write(data, ".jsonl", gz), options)


@CASES
@given(payload=st.one_of(parquet_bytes(), random_bytes()), options=OPTIONS, pair=st.sampled_from([None, None, "second", "id"]),
       gz=st.booleans())
def test_parquet_reader(payload, options, pair, gz):
    data, _ = payload
    check(ParquetReader(text_pair_column=pair), write(data, ".parquet", gz), options)


@CASES
@given(payload=st.one_of(delimited(","), jsonl_bytes(), parquet_bytes(), random_bytes()),
       suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt", ""]), options=OPTIONS,
       other=st.sampled_from(ENCODINGS), same=st.integers(0, 4).map(bool), gz=st.booleans())
def test_auto_reader(payload, suffix, options, other, same, gz):
    data, encoding = pick(payload, other, same)
    check(AutoReader(encoding=encoding), write(data, suffix, gz), options)
