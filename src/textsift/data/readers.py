"""Readers for CSV, TSV, JSON Lines and Parquet files, plain or gzip-compressed.

Every reader streams :class:`Example` objects (bounded memory for ``predict``) and reports bad rows
with the file and row number, what was expected and the fix.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from textsift import registry
from textsift.config.spec import Spec
from textsift.data.example import Example
from textsift.errors import DataError

_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise DataError(
            f"{path}: cannot tell the file format from its name. Use .csv, .tsv, .jsonl or .parquet "
            "(optionally .gz), or set data.reader.type to csv, tsv, jsonl or parquet."
        )
    return fmt


def _open_bytes(path: Path) -> io.BufferedIOBase:
    if not path.is_file():
        raise DataError(f"Data file '{path}' does not exist.")
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _decode_error(path: Path, encoding: str, exc: UnicodeDecodeError) -> DataError:
    """Find the line of the first undecodable byte (re-reads the file: this is the error path only)."""
    with _open_bytes(path) as f:
        raw = f.read()
    try:
        raw.decode(encoding)
        line, byte = "?", ""
    except UnicodeDecodeError as full:
        line = str(raw[: full.start].count(b"\n") + 1)
        byte = f" 0x{raw[full.start]:02x}"
    hint = "latin-1" if encoding.replace("-", "").lower() in ("utf8", "ascii") else "utf-8"
    return DataError(
        f"{path}, line {line}: byte{byte} is not valid {encoding} ({exc.reason}). "
        f"Set data.reader.encoding to the file's encoding (for example '{hint}'), or re-save the file as UTF-8."
    )


class Reader(Spec):
    """Column mapping shared by every reader."""

    text_column: str = Field("text", description="Column (or JSON key) holding the text.")
    text_pair_column: str | None = Field(None, description="Column holding the second text of a pair.")
    label_column: str = Field("label", description="Column holding the label.")
    encoding: str = Field("utf-8", description="Text encoding of the file, e.g. utf-8, latin-1, cp1252.")

    def read(self, path: str | Path, *, require_labels: bool = True) -> list[Example]:
        return list(self.iter(path, require_labels=require_labels))

    def iter(self, path: str | Path, *, require_labels: bool = True) -> Iterator[Example]:
        path = Path(path)
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise DataError(f"data.reader.encoding: unknown encoding '{self.encoding}'.") from None
        try:
            yield from self._rows(path, require_labels)
        except UnicodeDecodeError as exc:
            raise _decode_error(path, self.encoding, exc) from None

    def _rows(self, path: Path, require_labels: bool) -> Iterator[Example]:
        raise NotImplementedError

    # -- checks shared by every format --
    def _missing_columns(self, path: Path, columns: list[str], require_labels: bool) -> None:
        wanted = [("text_column", self.text_column)]
        if self.text_pair_column:
            wanted.append(("text_pair_column", self.text_pair_column))
        if require_labels:
            wanted.append(("label_column", self.label_column))
        for setting, name in wanted:
            if name not in columns:
                from textsift.errors import did_you_mean

                raise DataError(
                    f"{path}: no column '{name}' (data.reader.{setting}).{did_you_mean(name, columns)} "
                    f"Columns found: {', '.join(map(str, columns)) or '(none)'}. Set data.reader.{setting} to one of them."
                )

    def _example(self, path: Path, row: int, record: dict[str, Any], require_labels: bool) -> Example:
        text = self._text(path, row, record, self.text_column, "text_column")
        pair = self._text(path, row, record, self.text_pair_column, "text_pair_column") if self.text_pair_column else None
        label = None
        if require_labels or self.label_column in record:
            value = record.get(self.label_column)
            if value is None or (isinstance(value, str) and not value.strip()):
                if require_labels:
                    raise DataError(
                        f"{path}, row {row}: the label (column '{self.label_column}') is empty. "
                        "Every training and evaluation example needs a label: fill it in or remove the row."
                    )
            elif isinstance(value, list) or (hasattr(value, "tolist") and not isinstance(value, str)):
                items = value if isinstance(value, list) else value.tolist()
                if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in items):
                    raise DataError(f"{path}, row {row}: the label list (column '{self.label_column}') holds {items!r}; expected label names.")
                return Example(text=text, labels=tuple(str(v).strip() for v in items), text_pair=pair, row=row)
            elif isinstance(value, dict):
                raise DataError(
                    f"{path}, row {row}: the label (column '{self.label_column}') is a mapping {value!r}, "
                    "expected a label, or a list of labels for a multilabel task."
                )
            else:
                label = str(value).strip() if not isinstance(value, bool) else str(value).lower()
                if isinstance(value, float) and value.is_integer():
                    label = str(int(value))
        return Example(text=text, label=label, text_pair=pair, row=row)

    @staticmethod
    def _text(path: Path, row: int, record: dict[str, Any], column: str | None, setting: str) -> str:
        if column not in record:
            raise DataError(f"{path}, row {row}: no '{column}' field (data.reader.{setting}).")
        value = record[column]
        if not isinstance(value, str):
            raise DataError(
                f"{path}, row {row}: the text (column '{column}') is {type(value).__name__} {value!r}, expected a string."
            )
        if not value.strip():
            raise DataError(
                f"{path}, row {row}: the text (column '{column}') is empty. Remove the row or fill in its text."
            )
        return value


@registry.readers.register("jsonl")
class JsonlReader(Reader):
    """JSON Lines: one object per line."""

    type: Literal["jsonl"] = "jsonl"

    def _rows(self, path: Path, require_labels: bool) -> Iterator[Example]:
        with _open_bytes(path) as raw, io.TextIOWrapper(raw, encoding=self.encoding) as f:
            checked = False
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}, line {line_no}: not valid JSON ({exc.msg}, column {exc.colno}).") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}, line {line_no}: expected a JSON object, found {type(record).__name__}.")
                if not checked:
                    self._missing_columns(path, list(record), require_labels)
                    checked = True
                yield self._example(path, line_no, record, require_labels)


@registry.readers.register("csv")
class CsvReader(Reader):
    """Comma-separated values (or any delimiter), with or without a header row."""

    type: Literal["csv"] = "csv"
    delimiter: str | None = Field(None, description="Field separator; null: ',' for .csv, tab for .tsv.")
    header: bool = Field(True, description="The first row names the columns. Without it, columns are '0', '1', ...")
    quotechar: str = '"'

    def _delimiter(self, path: Path) -> str:
        return self.delimiter if self.delimiter is not None else ","

    def _rows(self, path: Path, require_labels: bool) -> Iterator[Example]:
        delimiter = self._delimiter(path)
        if len(delimiter) != 1:
            raise DataError(f"data.reader.delimiter must be one character, got {delimiter!r}.")
        with _open_bytes(path) as raw, io.TextIOWrapper(raw, encoding=self.encoding, newline="") as f:
            reader = csv.reader(f, delimiter=delimiter, quotechar=self.quotechar)
            columns: list[str] | None = None
            if self.header:
                columns = next(reader, None)
                if columns is None:
                    raise DataError(f"{path}: the file is empty; expected a header row.")
                columns = [c.strip().lstrip("\ufeff") for c in columns]
                self._missing_columns(path, columns, require_labels)
            for values in reader:
                if not values or all(not v.strip() for v in values):
                    continue
                if columns is None:
                    columns = [str(i) for i in range(len(values))]
                    self._missing_columns(path, columns, require_labels)
                if len(values) != len(columns):
                    raise DataError(
                        f"{path}, row {reader.line_num}: {len(values)} fields, expected {len(columns)} "
                        f"(delimiter {delimiter!r}). Quote fields that contain the delimiter, or set data.reader.delimiter."
                    )
                yield self._example(path, reader.line_num, dict(zip(columns, values)), require_labels)


@registry.readers.register("tsv")
class TsvReader(CsvReader):
    """Tab-separated values."""

    type: Literal["tsv"] = "tsv"  # type: ignore[assignment]

    def _delimiter(self, path: Path) -> str:
        return self.delimiter if self.delimiter is not None else "\t"


@registry.readers.register("parquet")
class ParquetReader(Reader):
    """Apache Parquet, read in record batches."""

    type: Literal["parquet"] = "parquet"

    def _rows(self, path: Path, require_labels: bool) -> Iterator[Example]:
        import pyarrow.parquet as pq

        with _open_bytes(path) as raw:
            source = io.BytesIO(raw.read()) if path.suffix.lower() == ".gz" else raw
            try:
                pf = pq.ParquetFile(source)
            except Exception as exc:  # pyarrow raises ArrowInvalid and friends
                raise DataError(f"{path}: not a readable Parquet file ({exc}).") from None
            columns = pf.schema_arrow.names
            self._missing_columns(path, columns, require_labels)
            wanted = [c for c in (self.text_column, self.text_pair_column, self.label_column) if c and c in columns]
            row = 0
            for batch in pf.iter_batches(batch_size=4096, columns=wanted):
                for record in batch.to_pylist():
                    row += 1
                    yield self._example(path, row, record, require_labels)


@registry.readers.register("auto")
class AutoReader(CsvReader):
    """Pick the format from the file name: .csv, .tsv, .jsonl/.json/.ndjson, .parquet, each optionally .gz."""

    type: Literal["auto"] = "auto"  # type: ignore[assignment]

    def _rows(self, path: Path, require_labels: bool) -> Iterator[Example]:
        fmt = detect_format(path)
        columns = {"text_column": self.text_column, "text_pair_column": self.text_pair_column,
                   "label_column": self.label_column, "encoding": self.encoding}
        reader: Reader
        if fmt == "jsonl":
            reader = JsonlReader(**columns)
        elif fmt == "parquet":
            reader = ParquetReader(**columns)
        else:
            cls = TsvReader if fmt == "tsv" else CsvReader
            reader = cls(**columns, delimiter=self.delimiter, header=self.header, quotechar=self.quotechar)
        return reader._rows(path, require_labels)
