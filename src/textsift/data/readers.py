"""Readers for CSV, TSV, JSON Lines and Parquet files, plain or gzip-compressed.

Every reader streams :class:`Example` objects (bounded memory for ``predict``) and reports bad rows
with the file and row number, what was expected and the fix. Whatever the bytes of a file, reading
it gives examples or one :class:`DataError`, never another exception (a property-based test drives
every reader with generated files).

Rows: a CSV/TSV row is numbered as a spreadsheet shows it (the header is row 1) and a JSON Lines row
by its line; a Parquet row by its position (1-based). Lines with no characters at all are not rows.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import logging
import sys
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from textsift import registry
from textsift.config.spec import Spec
from textsift.data.example import Example
from textsift.errors import DataError

_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
DATA_SUFFIXES = frozenset(_FORMATS)

# Any field that fits in memory must read: the csv module's default limit is 128 KiB.
try:
    csv.field_size_limit(sys.maxsize)
except OverflowError:  # pragma: no cover - platforms whose C long is 32 bits
    csv.field_size_limit(2**31 - 1)

_SNIFF_BYTES = 8192
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadOptions:
    """How one read goes, beyond the reader's settings.

    ``names`` says how the user changes each reader setting in the command at hand ("data.reader.encoding"
    in a config, "--encoding" on ``predict``), so that every error names an option the user actually has.
    ``on_empty``: "error" (an empty text is an error naming the row) or "keep" (the caller decides).
    ``keep_columns``: input columns passed through on each example (``Example.columns``).
    """

    require_labels: bool = True
    on_empty: Literal["error", "keep"] = "error"
    keep_columns: tuple[str, ...] = ()
    names: Mapping[str, str] = field(default_factory=dict)

    def name(self, setting: str) -> str:
        return self.names.get(setting, f"data.reader.{setting}")


def shown(value: Any, limit: int = 60) -> str:
    """A value as an error message shows it: repr'd (so on one line) and cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def detect_format(path: Path, options: ReadOptions | None = None) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise DataError(
            f"{path}: cannot tell the file format from its name. Use .csv, .tsv, .jsonl or .parquet "
            f"(optionally .gz), or set {(options or ReadOptions()).name('type')} to csv, tsv, jsonl or parquet."
        )
    return fmt


def _open_bytes(path: Path) -> io.BufferedIOBase:
    if not path.exists():
        raise DataError(f"Data file '{path}' does not exist.")
    if not path.is_file():
        raise DataError(f"'{path}' is a directory, expected a data file.")
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _wide_encoding(encoding: str) -> bool:
    return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))


def _python_encoding(encoding: str) -> str:
    """UTF-8 files may start with a byte order mark (Excel writes one): read it as 'utf-8-sig'."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding  # (ascii is a strict subset: kept)


def _looks_like_utf8(head: bytes) -> bool:
    """Non-ASCII bytes that all form valid UTF-8 sequences: almost surely UTF-8, not a one-byte encoding."""
    if not any(b >= 0x80 for b in head):
        return False
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"  # a sequence cut by the sniff


def _open_text(path: Path, encoding: str, options: ReadOptions | None = None, **kwargs: Any) -> io.TextIOWrapper:
    raw = _open_bytes(path)
    try:
        head = raw.peek(_SNIFF_BYTES)[:_SNIFF_BYTES]  # type: ignore[attr-defined]
    except BaseException:
        raw.close()
        raise
    nul = head.find(b"\x00")
    if nul >= 0 and not _wide_encoding(encoding):
        raw.close()
        if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(head) >= 4 and head[1::2].count(0) >= len(head) // 4):
            raise DataError(f"{path}: the file looks like UTF-16 text (Excel's 'Unicode text'), read as {encoding}. "
                            f"Set {(options or ReadOptions()).name('encoding')} to utf-16.")
        raise DataError(
            f"{path}: not a text file (a NUL byte at offset {nul}); expected CSV, TSV or JSON Lines text. "
            "Check the file, or name a Parquet file .parquet."
        )
    if not codecs.lookup(encoding).name.startswith(("utf-8", "ascii")) and not _wide_encoding(encoding) and _looks_like_utf8(head):
        logger.warning(
            "%s is read as %s, but its text looks like UTF-8: its non-ASCII characters would come out garbled (é as Ã©). "
            "If it is UTF-8, set %s to utf-8.", path, encoding, (options or ReadOptions()).name("encoding"))
    return io.TextIOWrapper(raw, encoding=_python_encoding(encoding), **kwargs)


def _decode_error(path: Path, encoding: str, exc: UnicodeDecodeError, options: ReadOptions) -> DataError:
    """Find the line of the first undecodable byte (re-reads the file: this is the error path only)."""
    try:
        with _open_bytes(path) as f:
            raw = f.read()
        if _python_encoding(encoding) == "utf-8-sig" and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]  # utf-8-sig counts its offsets after the mark: count them the same here
        raw.decode(encoding)
        line, byte = "?", ""
    except UnicodeDecodeError as full:
        line = str(raw[: full.start].count(b"\n") + 1)
        byte = f" 0x{raw[full.start]:02x}"
    except (OSError, EOFError, zlib.error):
        line, byte = "?", ""
    hint = "latin-1" if codecs.lookup(encoding).name in ("utf-8", "ascii") else "utf-8"
    return DataError(
        f"{path}, line {line}: byte{byte} is not valid {encoding} ({exc.reason}). "
        f"Set {options.name('encoding')} to the file's encoding (for example '{hint}'), or re-save the file as UTF-8."
    )


class Reader(Spec):
    """Column mapping shared by every reader."""

    text_column: str = Field("text", description="Column (or JSON key) holding the text.")
    text_pair_column: str | None = Field(None, description="Column holding the second text of a pair.")
    label_column: str = Field("label", description="Column holding the label.")
    encoding: str = Field("utf-8", description="Text encoding of the file, e.g. utf-8, latin-1, cp1252 (a UTF-8 byte order mark is skipped).")

    def read(self, path: str | Path, *, require_labels: bool | None = None, options: ReadOptions | None = None) -> list[Example]:
        return list(self.iter(path, require_labels=require_labels, options=options))

    def iter(self, path: str | Path, *, require_labels: bool | None = None, options: ReadOptions | None = None) -> Iterator[Example]:
        """Examples of ``path``, streamed; any problem is one :class:`DataError` naming the file (and row)."""
        path = Path(path)
        options = options or ReadOptions()
        if require_labels is not None and require_labels != options.require_labels:
            from dataclasses import replace

            options = replace(options, require_labels=require_labels)
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise DataError(f"{options.name('encoding')}: unknown encoding {shown(self.encoding)}. Use one Python knows, e.g. utf-8, latin-1, cp1252.") from None
        try:
            yield from self._rows(path, options)
        except UnicodeDecodeError as exc:
            raise _decode_error(path, self.encoding, exc, options) from None
        except UnicodeError as exc:
            raise DataError(f"{path}: cannot decode the file as {self.encoding} ({exc}). Set {options.name('encoding')} to its encoding.") from None
        except csv.Error as exc:
            raise DataError(f"{path}: not readable as delimited text ({exc}). Check its quoting, or set {options.name('delimiter')}.") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: cannot read the file ({type(exc).__name__}: {shown(str(exc), 120)[1:-1]}).") from None

    def _rows(self, path: Path, options: ReadOptions) -> Iterator[Example]:
        raise NotImplementedError

    # -- checks shared by every format --
    def _missing_columns(self, path: Path, columns: list[str], options: ReadOptions) -> None:
        wanted = [("text_column", self.text_column)]
        if self.text_pair_column:
            wanted.append(("text_pair_column", self.text_pair_column))
        if options.require_labels:
            wanted.append(("label_column", self.label_column))
        wanted += [("keep_columns", c) for c in options.keep_columns]
        for setting, name in wanted:
            if name not in columns:
                from textsift.errors import did_you_mean

                found = ", ".join(shown(c, 40) for c in columns[:20]) + (f" and {len(columns) - 20} more" if len(columns) > 20 else "")
                fix = (f"Set {options.name(setting)} to one of them." if setting != "keep_columns"
                       else f"Name only columns the file has in {options.name(setting)}.")
                split = next((d for d in ("\t", ";", "|", ",") if len(columns) == 1 and d in str(columns[0])), None)
                if split is not None:  # one column whose name holds another separator: the wrong delimiter
                    names = {"\t": "a tab", ";": "';'", "|": "'|'", ",": "','"}
                    given = getattr(self, "delimiter", None)
                    fix = (f"Its one header field holds {names[split]}: the file looks delimited by {names[split]}"
                           f"{f', not {shown(given)}' if given else ''}. Set {options.name('delimiter')} to "
                           f"{shown(split)}{', or name the file .tsv' if split == chr(9) else ''}.")
                raise DataError(
                    f"{path}: no column {shown(name, 40)} ({options.name(setting)}).{did_you_mean(name, [str(c) for c in columns])} "
                    f"Columns found: {found or '(none)'}. {fix}"
                )

    def _example(self, path: Path, row: int, record: dict[str, Any], options: ReadOptions) -> Example:
        text = self._text(path, row, record, self.text_column, "text_column", options)
        pair = self._text(path, row, record, self.text_pair_column, "text_pair_column", options) if self.text_pair_column else None
        columns = {c: record.get(c) for c in options.keep_columns} if options.keep_columns else None
        label = None
        if options.require_labels or self.label_column in record:
            value = record.get(self.label_column)
            if value is None or (isinstance(value, str) and not value.strip()):
                if options.require_labels:
                    raise DataError(
                        f"{path}, row {row}: the label (column {shown(self.label_column, 40)}) is empty. "
                        "Every training and evaluation example needs a label: fill it in or remove the row."
                    )
            elif isinstance(value, list) or (hasattr(value, "tolist") and not isinstance(value, (str, bytes))):
                items = value if isinstance(value, list) else value.tolist()
                if not isinstance(items, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in items):
                    raise DataError(f"{path}, row {row}: the label list (column {shown(self.label_column, 40)}) holds {shown(items)}; expected label names.")
                return Example(text=text, labels=tuple(str(v).strip() for v in items), text_pair=pair, row=row, columns=columns)
            elif isinstance(value, (dict, bytes)):
                raise DataError(
                    f"{path}, row {row}: the label (column {shown(self.label_column, 40)}) is {type(value).__name__} {shown(value)}, "
                    "expected a label, or a list of labels for a multilabel task."
                )
            else:
                label = str(value).strip() if not isinstance(value, bool) else str(value).lower()
                if isinstance(value, float) and value.is_integer():
                    label = str(int(value))
        return Example(text=text, label=label, text_pair=pair, row=row, columns=columns)

    @staticmethod
    def _text(path: Path, row: int, record: dict[str, Any], column: str | None, setting: str, options: ReadOptions) -> str:
        if column not in record:
            raise DataError(f"{path}, row {row}: no {shown(column, 40)} field ({options.name(setting)}).")
        value = record[column]
        if value is None and options.on_empty == "keep":  # a null text (pandas writes them) is an empty text
            value = ""
        if not isinstance(value, str):
            raise DataError(
                f"{path}, row {row}: the text (column {shown(column, 40)}) is {type(value).__name__} {shown(value)}, expected a string."
            )
        if not value.strip() and options.on_empty == "error":
            raise DataError(
                f"{path}, row {row}: the text (column {shown(column, 40)}) is empty. Remove the row or fill in its text."
                + (f" Or choose what to do with empty texts: {options.names['on_empty']}." if "on_empty" in options.names else "")
            )
        return value


@registry.readers.register("jsonl")
class JsonlReader(Reader):
    """JSON Lines: one object per line."""

    type: Literal["jsonl"] = "jsonl"

    def _rows(self, path: Path, options: ReadOptions) -> Iterator[Example]:
        with _open_text(path, self.encoding, options) as f:
            checked = False
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}, line {line_no}: not valid JSON ({exc.msg}, column {exc.colno}).") from None
                except RecursionError:
                    raise DataError(f"{path}, line {line_no}: JSON nested too deeply to read.") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}, line {line_no}: expected a JSON object, found {type(record).__name__}.")
                if not checked:
                    self._missing_columns(path, list(record), options)
                    checked = True
                yield self._example(path, line_no, record, options)


@registry.readers.register("csv")
class CsvReader(Reader):
    """Comma-separated values (or any delimiter), with or without a header row."""

    type: Literal["csv"] = "csv"
    delimiter: str | None = Field(None, description="Field separator; null: ',' for .csv, tab for .tsv.")
    header: bool = Field(True, description="The first row names the columns. Without it, columns are '0', '1', ...")
    quotechar: str = '"'

    def _delimiter(self, path: Path) -> str:
        return self.delimiter if self.delimiter is not None else ","

    def _rows(self, path: Path, options: ReadOptions) -> Iterator[Example]:
        delimiter = self._delimiter(path)
        if len(delimiter) != 1 or delimiter in "\r\n":
            raise DataError(f"{options.name('delimiter')} must be one character (not a line break), got {shown(delimiter)}.")
        if len(self.quotechar) != 1 or self.quotechar in "\r\n" or self.quotechar == delimiter:
            raise DataError(f"data.reader.quotechar must be one character other than the delimiter, got {shown(self.quotechar)}.")
        with _open_text(path, self.encoding, options, newline="") as f:
            reader = csv.reader(f, delimiter=delimiter, quotechar=self.quotechar)
            columns: list[str] | None = None
            if self.header:
                columns = next((r for r in reader if r), None)  # lines with no characters before the header are not rows
                if columns is None:
                    raise DataError(f"{path}: the file is empty; expected a header row.")
                columns = [c.strip() for c in columns]
                self._missing_columns(path, columns, options)
            row = 1 if self.header else 0  # spreadsheet row numbers: the header is row 1 (a multi-line field is one row)
            for values in reader:
                if not values:  # a line with no characters is not a row
                    continue
                row += 1
                if columns is None:
                    columns = [str(i) for i in range(len(values))]
                    self._missing_columns(path, columns, options)
                if len(values) != len(columns):
                    raise DataError(
                        f"{path}, row {row}{f' (line {reader.line_num})' if reader.line_num != row else ''}: {len(values)} fields, expected {len(columns)} "
                        f"(delimiter {delimiter!r}). Quote fields that contain the delimiter, or set {options.name('delimiter')}."
                    )
                yield self._example(path, row, dict(zip(columns, values)), options)


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

    def _rows(self, path: Path, options: ReadOptions) -> Iterator[Example]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        with _open_bytes(path) as raw:
            source = io.BytesIO(raw.read()) if path.suffix.lower() == ".gz" else raw
            try:
                pf = pq.ParquetFile(source)
                columns = pf.schema_arrow.names
            except (pa.ArrowException, ValueError, OSError) as exc:  # ArrowInvalid and friends
                raise DataError(f"{path}: not a readable Parquet file ({shown(str(exc), 120)[1:-1]}).") from None
            self._missing_columns(path, columns, options)
            wanted = list(dict.fromkeys(c for c in (self.text_column, self.text_pair_column, self.label_column, *options.keep_columns)
                                        if c and c in columns))
            row = 0
            batches = pf.iter_batches(batch_size=4096, columns=wanted)
            while True:
                try:
                    batch = next(batches, None)
                    records = batch.to_pylist() if batch is not None else None
                except (pa.ArrowException, ValueError, OSError) as exc:
                    raise DataError(f"{path}: cannot read the Parquet data after row {row} ({shown(str(exc), 120)[1:-1]}).") from None
                if records is None:
                    break
                for record in records:
                    row += 1
                    yield self._example(path, row, record, options)


@registry.readers.register("auto")
class AutoReader(CsvReader):
    """Pick the format from the file name: .csv, .tsv, .jsonl/.json/.ndjson, .parquet, each optionally .gz."""

    type: Literal["auto"] = "auto"  # type: ignore[assignment]

    def for_file(self, path: Path, options: ReadOptions | None = None) -> Reader:
        """The reader of the format ``path``'s name says, with these column settings."""
        fmt = detect_format(path, options)
        columns = {"text_column": self.text_column, "text_pair_column": self.text_pair_column,
                   "label_column": self.label_column, "encoding": self.encoding}
        if fmt == "jsonl":
            return JsonlReader(**columns)
        if fmt == "parquet":
            return ParquetReader(**columns)
        cls = TsvReader if fmt == "tsv" else CsvReader
        return cls(**columns, delimiter=self.delimiter, header=self.header, quotechar=self.quotechar)

    def _rows(self, path: Path, options: ReadOptions) -> Iterator[Example]:
        return self.for_file(path, options)._rows(path, options)


def reader_for_file(reader: Reader, path: str | Path) -> Reader:
    """The reader a trained model reads a new file with: its own, unless the file's name says another format.

    A model trained on JSON Lines keeps ``type: jsonl`` in its config; given ``new.csv`` to predict or evaluate, that
    reader failed on the first line ('not valid JSON'). A file whose name says csv, tsv, jsonl or parquet is read in
    that format, with the model's columns and encoding (``--reader`` still forces one)."""
    if isinstance(reader, AutoReader) or str(path) == "-":
        return reader
    try:
        fmt = detect_format(Path(path))
    except DataError:
        return reader  # a name that says nothing: the model's own format
    if fmt == reader.type:  # type: ignore[attr-defined]
        return reader
    columns = {"text_column": reader.text_column, "text_pair_column": reader.text_pair_column,
               "label_column": reader.label_column, "encoding": reader.encoding}
    logger.info("%s: read as %s, as its name says (the model's own data was %s; --reader chooses another)",
                path, fmt, reader.type)  # type: ignore[attr-defined]
    return AutoReader(**columns).for_file(Path(path))


READER_OPTIONS = {
    "type": "--reader", "encoding": "--encoding", "text_column": "--text-column", "text_pair_column": "--text-pair-column",
    "label_column": "--label-column", "delimiter": "--delimiter",
}
"""How ``predict`` and ``evaluate`` name the reader settings (their command-line options)."""


def with_overrides(reader: Reader, *, type: str | None = None, **settings: Any) -> Reader:
    """``reader`` with the settings a command line gives (None: keep the model's own)."""
    given = {k: v for k, v in settings.items() if v is not None}
    if type is None and not given:
        return reader
    base = reader.model_dump()
    base.update(given)
    base["type"] = type or base["type"]
    cls = registry.readers.get(base["type"]) if base["type"] in registry.readers.names() else None
    if cls is None:
        from textsift.errors import ConfigError

        raise ConfigError(f"--reader: unknown reader {shown(base['type'])}; use one of {', '.join(registry.readers.names())}.")
    allowed = set(cls.model_fields)
    dropped = [k for k in given if k not in allowed]
    if dropped:
        from textsift.errors import ConfigError

        raise ConfigError(f"{', '.join(READER_OPTIONS.get(k, k) for k in dropped)}: not a setting of the {base['type']} reader.")
    return cls(**{k: v for k, v in base.items() if k in allowed})
