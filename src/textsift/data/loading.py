"""From a validated config to train / validation / test datasets and a label set."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textsift.config.schema import Config
from textsift.data.example import Dataset, Example
from textsift.data.generators import DatasetSpec
from textsift.data.labels import LabelSet
from textsift.data.readers import Reader
from textsift.errors import DataError

logger = logging.getLogger(__name__)


@dataclass
class Splits:
    train: Dataset
    validation: Dataset | None
    test: Dataset | None
    labels: LabelSet


def read_source(source: Any, reader: Reader, *, require_labels: bool = True) -> Dataset:
    if isinstance(source, DatasetSpec):
        return source.generate()
    path = Path(source)
    examples = reader.read(path, require_labels=require_labels)
    if not examples:
        raise DataError(f"{path}: no examples found (the file has no data rows).")
    return Dataset(str(path), examples)


def stratified_split(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Hold out ``fraction`` of each class (at least one example of every class with two or more)."""
    rng = np.random.default_rng(seed)
    by_label: dict[Any, list[int]] = {}
    for i, ex in enumerate(dataset.examples):
        by_label.setdefault(ex.label, []).append(i)
    held: list[int] = []
    for label in sorted(by_label, key=str):
        idx = np.array(by_label[label])
        rng.shuffle(idx)
        n = int(round(len(idx) * fraction))
        if len(idx) >= 2:
            n = min(max(n, 1), len(idx) - 1)
        else:
            n = 0
        held.extend(idx[:n].tolist())
    held_set = set(held)
    train = [ex for i, ex in enumerate(dataset.examples) if i not in held_set]
    val = [dataset.examples[i] for i in sorted(held)]
    return (
        Dataset(f"{dataset.name} (train part)", train),
        Dataset(f"{dataset.name} (validation part, {fraction:.0%} stratified)", val),
    )


def load_splits(config: Config) -> Splits:
    reader: Reader = config.data.reader  # type: ignore[assignment]
    train = read_source(config.data.train, reader)
    labels = LabelSet.infer(train, config.data.labels)
    validation = read_source(config.data.validation, reader) if config.data.validation is not None else None
    if validation is None and config.data.validation_split > 0:
        train, validation = stratified_split(train, config.data.validation_split, config.seed)
        logger.info("No validation data given: held out %d stratified training examples.", len(validation))
    test = read_source(config.data.test, reader) if config.data.test is not None else None
    for ds in (validation, test):
        if ds is not None:
            labels.encode(ds)  # fail now, with the row, on a label outside the set
    counts = Counter(ex.label for ex in train.examples)
    logger.info("Train: %d examples, %d labels %s", len(train), len(labels), dict(sorted(counts.items())))
    return Splits(train, validation, test, labels)


def examples_from_texts(texts: list[str], pairs: list[str] | None = None) -> list[Example]:
    if pairs is not None and len(pairs) != len(texts):
        raise DataError(f"Got {len(texts)} texts but {len(pairs)} second texts of pairs; they must match.")
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"Text {i} is {type(text).__name__}, expected a string.")
        out.append(Example(text=text, text_pair=pairs[i] if pairs is not None else None, row=i + 1))
    return out
