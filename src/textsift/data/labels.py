"""The label set: names in a fixed order, and checks of the labels found in data."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np

from textsift.data.example import Dataset
from textsift.errors import DataError

logger = logging.getLogger(__name__)


class LabelSet:
    """Label names in order. ``multilabel``: each example has a set of them (encoded as a 0/1 matrix)."""

    def __init__(self, names: Sequence[str], multilabel: bool = False) -> None:
        self.names = list(names)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.multilabel = multilabel

    def __len__(self) -> int:
        return len(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSet) and other.names == self.names

    def encode(self, dataset: Dataset, fix: str = "Add it to data.labels, or fix the row.") -> np.ndarray:
        """Label indices of every example (multilabel: an examples x labels 0/1 matrix); a label outside
        the set is an error naming the row and saying ``fix``."""
        if self.multilabel:
            matrix = np.zeros((len(dataset), len(self.names)), dtype=np.float32)
            for i, ex in enumerate(dataset.examples):
                for label in ex.labels or ():
                    idx = self.index.get(label)
                    if idx is None:
                        raise DataError(
                            f"{dataset.name}, row {ex.row}: label '{label}' is not in the label set "
                            f"[{', '.join(self.names)}]. {fix}"
                        )
                    matrix[i, idx] = 1.0
            return matrix
        out = np.empty(len(dataset), dtype=np.int64)
        for i, ex in enumerate(dataset.examples):
            idx = self.index.get(ex.label)  # type: ignore[arg-type]
            if idx is None:
                raise DataError(
                    f"{dataset.name}, row {ex.row}: label '{ex.label}' is not in the label set "
                    f"[{', '.join(self.names)}]. {fix}"
                )
            out[i] = idx
        return out

    def absent_from(self, dataset: Dataset) -> list[str]:
        """Labels of the set that no example of ``dataset`` has."""
        seen = {label for ex in dataset.examples for label in (ex.labels if ex.labels is not None else (ex.label,))}
        return [n for n in self.names if n not in seen]

    @classmethod
    def infer(cls, dataset: Dataset, given: Sequence[str] | None = None, multilabel: bool = False) -> "LabelSet":
        if multilabel:
            counts = Counter(label for ex in dataset.examples for label in (ex.labels or ()))
            if given is None:
                warn_lookalike_labels(dataset, counts)
            label_set = cls(given if given is not None else sorted(counts), multilabel=True)
            label_set.encode(dataset)
            if len(label_set) < 2:
                raise DataError(f"{dataset.name}: only the label(s) {sorted(counts)} occur; a classifier needs at least two.")
            return label_set
        counts = Counter(ex.label for ex in dataset.examples)
        if given is None:
            warn_lookalike_labels(dataset, counts)
        if given is not None:
            label_set = cls(given)
            label_set.encode(dataset)  # every training label must be in the given set
        else:
            label_set = cls(sorted(counts))  # type: ignore[arg-type]
        if len(counts) < 2:
            only = next(iter(counts), None)
            raise DataError(
                f"{dataset.name}: every training example has the label '{only}'. A classifier needs at least "
                "two classes in its training data."
            )
        return label_set


def lookalike_labels(counts: Counter) -> list[list[str]]:
    """Groups of labels that differ only in case or inner whitespace ('FEAR', 'fear', 'Fear'), most frequent first."""
    groups: dict[str, list[str]] = {}
    for name in counts:
        if name is not None:
            groups.setdefault(" ".join(str(name).split()).casefold(), []).append(name)
    return [sorted(g, key=lambda n: (-counts[n], n)) for g in groups.values() if len(g) > 1]


def warn_lookalike_labels(dataset: Dataset, counts: Counter) -> None:
    """Say when labels differ only in case or spacing: each becomes a class of its own (a typo in a few rows then
    makes a class with a few examples, and macro averages count it), which is almost never what the data means."""
    for group in lookalike_labels(counts):
        rare = group[1:]
        rows = [ex.row for ex in dataset.examples if (ex.label in rare or any(l in rare for l in ex.labels or ()))][:5]
        logger.warning(
            "%s: the labels %s differ only in case or spacing, and each is a class of its own (%s examples). If they "
            "mean the same, fix the data (e.g. row%s %s), or set data.labels to the ones you mean.",
            dataset.name, " and ".join(repr(n) for n in group), " / ".join(str(counts[n]) for n in group),
            "s" if len(rows) > 1 else "", ", ".join(str(r) for r in rows))
