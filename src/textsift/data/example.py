"""The unit of data: one text (or text pair) with its label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, eq=True)
class Example:
    text: str
    label: str | None = None
    text_pair: str | None = None
    row: int = 0  # where it came from (line or row number), for error messages
    labels: tuple[str, ...] | None = None  # multi-label tasks: the set of labels (``label`` is then None)
    columns: dict[str, Any] | None = None  # input columns passed through to the output (predict --keep-columns)


@dataclass
class Dataset:
    """Examples read from one source; ``name`` is the file path or the generator's description."""

    name: str
    examples: list[Example]
    file: str | None = None  # a JSON Lines copy of exactly these examples, when one exists (workflow cache)

    def __len__(self) -> int:
        return len(self.examples)

    def texts(self) -> list[str]:
        return [ex.text for ex in self.examples]

    def labels(self) -> list[str]:
        return [ex.label for ex in self.examples]  # type: ignore[misc]

    @property
    def multilabel(self) -> bool:
        return any(ex.labels is not None for ex in self.examples)
