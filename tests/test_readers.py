from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from textsift.config import resolve
from textsift.data import Dataset, LabelSet, load_splits
from textsift.data.readers import AutoReader, CsvReader, JsonlReader, ParquetReader, TsvReader
from textsift.errors import DataError

from conftest import TINY, write_jsonl

ROWS = [{"text": t, "label": l} for t, l in TINY]


def test_jsonl_csv_tsv_parquet_and_gzip_read_the_same(tmp_path, tiny_jsonl, tiny_csv):
    tsv = tmp_path / "d.tsv"
    tsv.write_text("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in TINY))
    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), parquet)
    gz = tmp_path / "d.jsonl.gz"
    gz.write_bytes(gzip.compress(tiny_jsonl.read_bytes()))
    csv_gz = tmp_path / "d.csv.gz"
    csv_gz.write_bytes(gzip.compress(tiny_csv.read_bytes()))
    expected = [(t, l) for t, l in TINY]
    for path in (tiny_jsonl, tiny_csv, tsv, parquet, gz, csv_gz):
        got = [(ex.text, ex.label) for ex in AutoReader().read(path)]
        assert got == expected, path
    assert [ex.text for ex in TsvReader().read(tsv)] == [t for t, _ in TINY]
    assert [ex.text for ex in ParquetReader().read(parquet)] == [t for t, _ in TINY]


def test_csv_options_delimiter_no_header_and_column_mapping(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("pos;good film;a\nneg;bad film;b\n")
    reader = CsvReader(delimiter=";", header=False, text_column="1", label_column="0", text_pair_column="2")
    examples = reader.read(path)
    assert [(e.text, e.text_pair, e.label) for e in examples] == [("good film", "a", "pos"), ("bad film", "b", "neg")]
    assert examples[1].row == 2


def test_integer_labels_become_strings(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": 1.0}])
    assert [e.label for e in JsonlReader().read(path)] == ["0", "1"]


def test_missing_column_names_file_columns_and_setting(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"sentence": "x", "label": "a"}])
    with pytest.raises(DataError) as err:
        JsonlReader().read(path)
    msg = str(err.value)
    assert str(path) in msg and "no column 'text'" in msg and "data.reader.text_column" in msg and "sentence" in msg


def test_missing_csv_column_suggests(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("txt,label\nhello,a\n")
    with pytest.raises(DataError, match=r"no column 'text' \(data.reader.text_column\). Did you mean 'txt'\?"):
        CsvReader().read(path)


def test_empty_text_names_the_row(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "fine", "label": "a"}, {"text": "  ", "label": "b"}])
    with pytest.raises(DataError, match=r"d.jsonl, row 2: the text \(column 'text'\) is empty"):
        JsonlReader().read(path)


def test_non_string_text(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": 12, "label": "a"}])
    with pytest.raises(DataError, match=r"row 1: the text \(column 'text'\) is int 12, expected a string"):
        JsonlReader().read(path)


def test_missing_label_when_labels_are_required(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "x", "label": None}])
    with pytest.raises(DataError, match="row 1: the label .* is empty"):
        JsonlReader().read(path)
    assert JsonlReader().read(path, require_labels=False)[0].label is None


def test_the_undecodable_byte_is_named_right_after_a_byte_order_mark(tmp_path):
    """With a UTF-8 byte order mark the error named the byte three before the bad one ('0x66' for the 0xe9)."""
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\nfine,pos\nabcdefgh\xe9ijk,neg\n")
    with pytest.raises(DataError) as err:
        CsvReader().read(path)
    assert "line 3: byte 0xe9 is not valid utf-8" in str(err.value)


def test_latin1_file_read_as_utf8_names_line_and_fix(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\nnice,pos\ncaf\xe9 au lait,pos\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        CsvReader().read(path)
    msg = str(err.value)
    assert "line 3" in msg and "0xe9" in msg and "not valid utf-8" in msg and "encoding" in msg and "latin-1" in msg
    assert [e.text for e in CsvReader(encoding="latin-1").read(path)][1] == "café au lait"


BOM = b"\xef\xbb\xbf"
ACCENTED = [("café au lait", "pos"), ("crème brûlée", "pos"), ("naïve façade", "neg")]


def test_utf8_byte_order_mark_is_skipped_in_every_text_format(tmp_path):
    """Excel and Windows editors start UTF-8 files with a byte order mark: the first row must read like the rest."""
    jsonl = "".join(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n" for t, l in ACCENTED).encode("utf-8")
    csv_text = ("text,label\n" + "".join(f"{t},{l}\n" for t, l in ACCENTED)).encode("utf-8")
    tsv_text = ("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in ACCENTED)).encode("utf-8")
    files = {"d.jsonl": BOM + jsonl, "d.csv": BOM + csv_text, "d.tsv": BOM + tsv_text, "d.jsonl.gz": gzip.compress(BOM + jsonl),
             "d.csv.gz": gzip.compress(BOM + csv_text)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        examples = AutoReader().read(tmp_path / name)
        assert [(e.text, e.label) for e in examples] == ACCENTED, name
        assert examples[0].row == (1 if ".jsonl" in name else 2), name
    assert [e.text for e in JsonlReader().read(tmp_path / "d.jsonl")] == [t for t, _ in ACCENTED]
    assert [e.text for e in JsonlReader(encoding="UTF8").read(tmp_path / "d.jsonl")] == [t for t, _ in ACCENTED]  # any spelling


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-16"])
def test_encodings_of_tsv_jsonl_and_gzip_files(tmp_path, encoding):
    rows = ACCENTED + [("plain ascii", "neg")]
    texts = {
        "d.tsv": "text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows),
        "d.jsonl": "".join(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n" for t, l in rows),
    }
    for name, text in texts.items():
        data = text.encode(encoding)
        for path, content in ((tmp_path / name, data), (tmp_path / f"{name}.gz", gzip.compress(data))):
            path.write_bytes(content)
            got = [(e.text, e.label) for e in AutoReader(encoding=encoding).read(path)]
            assert got == rows, (path.name, encoding)


def test_wrong_encoding_in_a_gzip_tsv_names_the_line(tmp_path):
    path = tmp_path / "d.tsv.gz"
    path.write_bytes(gzip.compress("text\tlabel\nfine\tpos\ncafé\tpos\n".encode("latin-1")))
    with pytest.raises(DataError) as err:
        AutoReader().read(path)
    msg = str(err.value)
    assert "d.tsv.gz, line 3" in msg and "0xe9" in msg and "not valid utf-8" in msg and "latin-1" in msg
    assert [e.text for e in AutoReader(encoding="latin-1").read(path)] == ["fine", "café"]


def test_bad_json_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": oops}\n')
    with pytest.raises(DataError, match="d.jsonl, line 2: not valid JSON"):
        JsonlReader().read(path)


def test_ragged_csv_row(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\nhello,a\nhello,a,extra\n")
    with pytest.raises(DataError, match="row 3: 3 fields, expected 2"):
        CsvReader().read(path)


def test_unknown_extension_and_missing_file(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("x")
    with pytest.raises(DataError, match="cannot tell the file format"):
        AutoReader().read(path)
    with pytest.raises(DataError, match="does not exist"):
        AutoReader().read(tmp_path / "nope.csv")


def test_label_outside_the_given_label_set(tmp_path, tiny_jsonl):
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "x", "label": "pos"}, {"text": "y", "label": "meh"}])
    config = resolve({"data": {"train": str(tiny_jsonl), "test": str(test), "labels": ["neg", "pos"]}})
    with pytest.raises(DataError, match=r"test.jsonl, row 2: label 'meh' is not in the label set \[neg, pos\]"):
        load_splits(config)


def test_single_class_training_data(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": f"t{i}", "label": "only"} for i in range(5)])
    with pytest.raises(DataError, match="every training example has the label 'only'"):
        load_splits(resolve({"data": {"train": str(path)}}))


def test_stratified_split_keeps_every_class(tiny_jsonl):
    splits = load_splits(resolve({"data": {"train": str(tiny_jsonl), "validation_split": 0.25}}))
    assert len(splits.validation) == 4 and len(splits.train) == 12
    assert sorted(e.label for e in splits.validation.examples) == ["neg", "neg", "pos", "pos"]
    assert splits.labels.names == ["neg", "pos"]


def test_label_set_in_given_order(tiny_jsonl):
    splits = load_splits(resolve({"data": {"train": str(tiny_jsonl), "labels": ["pos", "neg"]}}))
    assert splits.labels.names == ["pos", "neg"]
    examples = splits.train.examples
    assert {e.label for e in examples} == {"pos", "neg"}
    # each label is encoded as its position in the given order, whatever order the file has
    assert LabelSet(["pos", "neg"]).encode(Dataset("x", examples)).tolist() == [0 if e.label == "pos" else 1 for e in examples]
    assert LabelSet(["neg", "pos"]).encode(Dataset("x", examples)).tolist() == [1 if e.label == "pos" else 0 for e in examples]


def test_sort_detection_generator():
    config = resolve({"data": {"train": {"type": "sort_detection", "size": 200, "seed": 3}}})
    splits = load_splits(config)
    examples = splits.train.examples + splits.validation.examples
    assert len(examples) == 200
    for ex in examples:
        chars = ex.text.split()
        assert (chars == sorted(chars)) == (ex.label == "sorted")
    again = load_splits(config)
    assert [e.text for e in again.train.examples] == [e.text for e in splits.train.examples]


def test_generator_settings_are_validated():
    from textsift.errors import ConfigError

    with pytest.raises(ConfigError, match="data.train.max_length"):
        resolve({"data": {"train": {"type": "sort_detection", "max_length": "long"}}})
    with pytest.raises(ConfigError, match=r"Unknown dataset 'sort_detect'. Did you mean 'sort_detection'\?"):
        resolve({"data": {"train": {"type": "sort_detect"}}})


def test_labels_that_differ_only_in_case_or_spacing_are_named(caplog):
    """'FEAR' in one row beside 'fear' in 300 made a class of its own without a word (macro-F1 then averaged over a
    class with one example); now a warning names the labels, their counts and the rows."""
    import logging

    from textsift.data.example import Dataset, Example
    from textsift.data.labels import LabelSet

    rows = [Example(text=f"t{i}", label="fear", row=i + 2) for i in range(5)] + [Example(text="x", label="FEAR", row=9),
            Example(text="y", label="joy", row=10), Example(text="z", label="Big  Joy", row=11), Example(text="w", label="big joy", row=12)]
    with caplog.at_level(logging.WARNING, logger="textsift"):
        labels = LabelSet.infer(Dataset("d.csv", rows))
    assert labels.names == ["Big  Joy", "FEAR", "big joy", "fear", "joy"]  # still separate classes: the data decides
    messages = [r.message for r in caplog.records]
    assert any("'fear' and 'FEAR' differ only in case or spacing" in m and "(5 / 1 examples)" in m and "row 9" in m for m in messages)
    assert any("'Big  Joy' and 'big joy'" in m for m in messages)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="textsift"):
        LabelSet.infer(Dataset("d.csv", [ex for ex in rows if ex.label in ("fear", "joy")]))
    assert not caplog.records


def test_a_tab_separated_file_named_csv_gets_the_delimiter_fix(tmp_path):
    """It said 'Columns found: 'text\\tlabel'. Set data.reader.text_column to one of them.', a fix that cannot work."""
    path = tmp_path / "data.csv"
    path.write_text("text\tlabel\nhello there\tpos\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"looks delimited by a tab\. Set data\.reader\.delimiter to '\\t', or name the file \.tsv"):
        CsvReader().read(path)
    path.write_text("text;label\nhello there;pos\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"delimited by ';'"):
        CsvReader().read(path)


def test_a_column_named_in_another_case_is_suggested(tmp_path):
    """--keep-columns ID on a file with 'id' said nothing helpful: difflib finds no likeness between 'ID' and 'id'."""
    from textsift.data.readers import ReadOptions

    path = tmp_path / "d.csv"
    path.write_text("id,Text,label\n1,hello,pos\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no column 'ID' \(--keep-columns\)\. Did you mean 'id'\?"):
        CsvReader(text_column="Text").read(path, options=ReadOptions(keep_columns=("ID",), names={"keep_columns": "--keep-columns"}))
    with pytest.raises(DataError, match=r"no column 'text' \(data.reader.text_column\)\. Did you mean 'Text'\?"):
        CsvReader().read(path)
