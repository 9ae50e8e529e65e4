"""Checks of the data a run reads: the cheap ones every ``train`` runs (leakage of exact copies, labels missing
from a split, heavy truncation), and the text normalisation they and ``textsift debug data`` share.

A check gives a :class:`CheckResult`: ``pass``, ``info``, ``warn`` or ``fail``, one message, and the rows behind it.
The cheap checks must stay cheap (they run before every training run): about half a second on imdb's 50,000 reviews,
a few milliseconds on emotion. ``data.checks: false`` (``train --no-data-checks``) turns them off.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from textsift.data.example import Dataset, Example

if TYPE_CHECKING:
    from textsift.data.labels import LabelSet

logger = logging.getLogger(__name__)

Status = Literal["pass", "info", "warn", "fail"]
STATUSES: tuple[Status, ...] = ("pass", "info", "warn", "fail")

TRUNCATION_WARN = 0.05
"""Warn when at least this share of a split's texts is longer than the tokenizer's max_length."""


@dataclass
class CheckResult:
    """The outcome of one check: its name, a status, one message (what was found and the fix) and the rows behind it."""

    name: str
    status: Status
    message: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self, rows: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "status": self.status, "message": self.message}
        if rows:
            out["rows"] = self.rows
        return out


# --- normalisation --------------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")
_ALNUM = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789")
_NOT_ALNUM = bytes(b for b in range(128) if b not in _ALNUM)
_ASCII = bytes(range(128))


def normalize(text: str) -> str:
    """The text's words as the near-copy check compares them: unicode NFKC, case folded, punctuation and whitespace
    dropped, words joined by one space ("Hello,  WORLD!" gives "hello world")."""
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


def example_text(example: Example) -> str:
    """The text of an example as the checks see it: a pair is both texts."""
    return example.text if example.text_pair is None else f"{example.text}\n{example.text_pair}"


def compact_key(text: str) -> bytes:
    """The text as the exact-copy and duplicate checks compare it: its letters and digits only, after unicode NFKC and
    case folding (``normalize(text)`` without its spaces), so that case, punctuation, whitespace and unicode form
    make no difference ("U.S.A." = "usa", "Don't!" = "dont"). Fast: bytes.translate for ASCII text."""
    folded = text.casefold()
    if folded.isascii():
        return folded.encode("ascii").translate(None, _NOT_ALNUM)
    # ASCII punctuation goes by bytes.translate (a UTF-8 sequence has no byte below 128), the rest char by char
    kept = unicodedata.normalize("NFKC", text).casefold().encode("utf-8").translate(None, _NOT_ALNUM)
    others = set(kept.translate(None, _ASCII).decode("utf-8"))  # the distinct non-ASCII characters: few
    drop = [char for char in others if not char.isalnum()]
    if not drop:
        return kept
    decoded = kept.decode("utf-8")
    for char in drop:
        decoded = decoded.replace(char, "")
    return decoded.encode("utf-8")


def _keys(dataset: Dataset) -> list[bytes]:
    return [compact_key(example_text(ex)) for ex in dataset.examples]


def exact_matches(train: Dataset, other: Dataset, train_keys: Sequence[bytes] | None = None) -> list[tuple[int, int]]:
    """Pairs (index in ``train``, index in ``other``) of examples with equal :func:`compact_key` (every train copy)."""
    index: dict[bytes, list[int]] = {}
    for i, key in enumerate(train_keys if train_keys is not None else _keys(train)):
        if key:
            index.setdefault(key, []).append(i)
    pairs = []
    for j, key in enumerate(_keys(other)):
        hits = index.get(key)
        if hits:
            pairs += [(i, j) for i in hits]
    return pairs


def label_names_of(example: Example) -> tuple[str, ...]:
    if example.labels is not None:
        return tuple(example.labels)
    return (example.label,) if example.label is not None else ()


# --- the cheap checks -----------------------------------------------------------------------------------------

def check_exact_leakage(train: Dataset, others: Iterable[tuple[str, Dataset]], train_keys: Sequence[bytes] | None = None) -> CheckResult:
    """Texts of validation/test that also occur in train (equal :func:`compact_key`): their metrics are inflated."""
    rows: list[dict[str, Any]] = []
    parts = []
    keys = train_keys if train_keys is not None else _keys(train)
    for split, dataset in others:
        pairs = exact_matches(train, dataset, keys)
        leaked = len({j for _, j in pairs})
        if leaked:
            parts.append(f"{leaked} of {len(dataset)} {split} texts ({leaked / len(dataset):.1%}) also occur in train")
        rows += [{"split": split, "row": dataset.examples[j].row, "train_row": train.examples[i].row, "kind": "exact",
                  "text": example_text(dataset.examples[j]), "train_text": example_text(train.examples[i])} for i, j in pairs]
    if not parts:
        return CheckResult("leakage_exact", "pass", "No validation or test text occurs in train (compared after normalising "
                           "case, punctuation, whitespace and unicode form).")
    first = rows[0]
    return CheckResult(
        "leakage_exact", "fail",
        f"{'; '.join(parts)} (after normalising case, punctuation, whitespace and unicode form; e.g. {first['split']} row "
        f"{first['row']} = train row {first['train_row']}): their metrics measure memory, not generalisation. Remove "
        "them from train, or from the evaluation split.", rows)


def check_missing_labels(labels: "LabelSet", others: Iterable[tuple[str, Dataset]]) -> CheckResult:
    """Labels of the label set that validation/test never has: their recall and F1 there are undefined (counted 0)."""
    rows = []
    for split, dataset in others:
        seen = {name for ex in dataset.examples for name in label_names_of(ex)}
        rows += [{"split": split, "label": name} for name in labels.names if name not in seen]
    if not rows:
        return CheckResult("labels_missing", "pass", "Every label occurs in every split.")
    by_split: dict[str, list[str]] = {}
    for r in rows:
        by_split.setdefault(r["split"], []).append(r["label"])
    found = "; ".join(f"{split} has no example of {', '.join(map(repr, names))}" for split, names in by_split.items())
    return CheckResult("labels_missing", "warn", f"{found}: their recall and F1 cannot be measured there (macro averages "
                       "count them as 0). Add examples of them to that split, or split the data stratified.", rows)


def longer_than(text: str, max_length: int) -> bool:
    """Whether ``text`` has more than ``max_length`` whitespace-separated words: a lower bound of its length in tokens of
    any tokenizer (each word is at least one token). Cheap: most texts are settled by their characters or spaces."""
    if len(text) <= max_length:
        return False
    if text.count(" ") + text.count("\n") + text.count("\t") < max_length:  # words <= separators + 1
        return False
    return len(text.split()) > max_length


def check_truncation_cheap(datasets: Iterable[tuple[str, Dataset]], max_length: int) -> CheckResult:
    """At least how many texts are longer than ``max_length`` (whitespace words, a lower bound of tokens)."""
    rows = []
    for split, dataset in datasets:
        cut = sum(1 for ex in dataset.examples if longer_than(example_text(ex), max_length))
        rows.append({"split": split, "examples": len(dataset), "longer_than_max_length": cut, "share": cut / max(len(dataset), 1)})
    heavy = [r for r in rows if r["share"] >= TRUNCATION_WARN]
    if not heavy:
        return CheckResult("truncation", "pass", f"Under {TRUNCATION_WARN:.0%} of the texts of each split have more words than "
                           f"tokenizer.max_length ({max_length}).", rows)
    found = "; ".join(f"at least {r['longer_than_max_length']} of {r['examples']} {r['split']} texts ({r['share']:.0%})" for r in heavy)
    return CheckResult("truncation", "warn", f"{found} are longer than tokenizer.max_length ({max_length}) and lose their ends. "
                       "Raise tokenizer.max_length if the ends matter.", rows)


def cheap_checks(train: Dataset, validation: Dataset | None, test: Dataset | None, labels: "LabelSet",
                 max_length: int | None) -> list[CheckResult]:
    """The checks every training run does before it trains: exact train/validation/test leakage, labels missing from
    validation/test, and heavy truncation at ``max_length`` (None: the tokenizer has none). A validation split held out
    of the training file is not passed as ``validation``: its copies of train are the file's own duplicates."""
    others = [(name, ds) for name, ds in (("validation", validation), ("test", test)) if ds is not None]
    results = []
    if others:
        results.append(check_exact_leakage(train, others))
        results.append(check_missing_labels(labels, others))
    if max_length is not None:
        splits = [("train", train)] + [(name, ds) for name, ds in (("validation", validation), ("test", test)) if ds is not None]
        results.append(check_truncation_cheap(splits, max_length))
    return results


def run_cheap_checks(train: Dataset, validation: Dataset | None, test: Dataset | None, labels: "LabelSet",
                     max_length: int | None) -> list[CheckResult]:
    """:func:`cheap_checks`, each warning logged (``textsift debug data`` shows more)."""
    t = time.perf_counter()
    results = cheap_checks(train, validation, test, labels, max_length)
    for r in results:
        if r.status in ("warn", "fail"):
            logger.warning("Data check %s: %s (textsift debug data shows more; data.checks: false, or train --no-data-checks, turns these checks off)", r.name, r.message)
    logger.debug("Data checks: %.3f s", time.perf_counter() - t)
    return results
