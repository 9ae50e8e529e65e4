"""The label set: names in a fixed order, and checks of the labels found in data."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from textsift.data.example import Dataset
from textsift.errors import DataError


class LabelSet:
    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.index = {name: i for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSet) and other.names == self.names

    def encode(self, dataset: Dataset) -> np.ndarray:
        """Label indices of every example; a label outside the set is an error naming the row."""
        out = np.empty(len(dataset), dtype=np.int64)
        for i, ex in enumerate(dataset.examples):
            idx = self.index.get(ex.label)  # type: ignore[arg-type]
            if idx is None:
                raise DataError(
                    f"{dataset.name}, row {ex.row}: label '{ex.label}' is not in the label set "
                    f"[{', '.join(self.names)}]. Add it to data.labels, or fix the row."
                )
            out[i] = idx
        return out

    @classmethod
    def infer(cls, dataset: Dataset, given: Sequence[str] | None = None) -> "LabelSet":
        counts = Counter(ex.label for ex in dataset.examples)
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
