"""From a validated config to train / validation / test datasets and a label set."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from textsift.config.schema import Config
from textsift.data.checks import CheckResult, run_cheap_checks
from textsift.data.example import Dataset, Example
from textsift.data.generators import DatasetSpec
from textsift.data.labels import LabelSet
from textsift.data.readers import ReadOptions, Reader
from textsift.errors import DataError

logger = logging.getLogger(__name__)


@dataclass
class Splits:
    train: Dataset
    validation: Dataset | None
    test: Dataset | None
    labels: LabelSet
    checks: list[CheckResult] = field(default_factory=list)  # the cheap data checks' results (data.checks)

    def summary(self) -> dict[str, Any]:
        """Sizes, training label counts and the data checks' findings, for meta.json and the model card."""
        sizes = {name: len(ds) for name, ds in (("train", self.train), ("validation", self.validation), ("test", self.test)) if ds is not None}
        counts = Counter(label for ex in self.train.examples for label in (ex.labels if ex.labels is not None else (ex.label,)))
        return {"sizes": sizes, "train_label_counts": {name: counts.get(name, 0) for name in self.labels.names},
                "checks": [c.as_dict(rows=False) for c in self.checks]}


def read_source(
    source: Any, reader: Reader, *, require_labels: bool = True, task: str | None = "single_label", label_delimiter: str = ",",
    options: ReadOptions | None = None,
) -> Dataset:
    if isinstance(source, DatasetSpec):
        dataset = source.generate()
    else:
        path = Path(source)
        examples = reader.read(path, require_labels=require_labels, options=options)
        if not examples:
            raise DataError(f"{path}: no examples found (the file has no data rows).")
        dataset = Dataset(str(path), examples)
    return fit_task(dataset, task, label_delimiter) if require_labels and task is not None else dataset


def read_for(
    config: Config, source: Any, *, require_labels: bool = True, reader: Reader | None = None, options: ReadOptions | None = None,
) -> Dataset:
    """Read ``source`` with the task and label delimiter of ``config`` and its reader (or ``reader``, e.g. with a
    command line's overrides; ``options.names`` says how errors name its settings)."""
    return read_source(source, reader or config.data.reader, require_labels=require_labels, task=config.task,  # type: ignore[arg-type]
                       label_delimiter=config.data.label_delimiter, options=options)


def fit_task(dataset: Dataset, task: str, delimiter: str = ",") -> Dataset:
    """Check the labels fit the task, before anything trains; multilabel: split 'a,b' strings into sets."""
    if task == "multilabel":
        examples = []
        for ex in dataset.examples:
            if ex.labels is None and ex.label is not None:
                parts = tuple(p.strip() for p in ex.label.split(delimiter) if p.strip())
                ex = replace(ex, label=None, labels=parts)
            examples.append(ex)
        if examples and all(len(ex.labels or ()) == 1 for ex in examples):
            raise DataError(
                f"{dataset.name}: task is multilabel, but every example has exactly one label: this looks like single-label "
                f"data. Set task: single_label, or check data.label_delimiter ('{delimiter}') matches how the file separates labels."
            )
        return Dataset(dataset.name, examples, dataset.file)
    for ex in dataset.examples:
        if ex.labels is not None:
            raise DataError(
                f"{dataset.name}, row {ex.row}: the label is a list {list(ex.labels)}: this is multi-label data. "
                "Set task: multilabel to train on label sets, or give one label per example."
            )
    if delimiter:
        names = {ex.label for ex in dataset.examples if ex.label is not None}
        for ex in dataset.examples:
            if ex.label and delimiter in ex.label:
                parts = [p.strip() for p in ex.label.split(delimiter)]
                if len(parts) > 1 and all(p in names for p in parts):
                    raise DataError(
                        f"{dataset.name}, row {ex.row}: the label '{ex.label}' joins labels that occur on their own "
                        f"({', '.join(parts)}): this looks like multi-label data. Set task: multilabel, or give one label per example."
                    )
    return dataset


def stratified_split(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Hold out ``fraction`` of each class (at least one example of every class with two or more)."""
    rng = np.random.default_rng(seed)
    counts = Counter(label for ex in dataset.examples for label in (ex.labels or ()))
    by_label: dict[Any, list[int]] = {}
    for i, ex in enumerate(dataset.examples):
        # multilabel: stratify by the rarest label of the example (a cheap stand-in for iterative stratification)
        key = ex.label if ex.labels is None else (min(ex.labels, key=lambda label: counts[label]) if ex.labels else "")
        by_label.setdefault(key, []).append(i)
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
    train = read_for(config, config.data.train)
    labels = LabelSet.infer(train, config.data.labels, multilabel=config.task == "multilabel")
    validation = read_for(config, config.data.validation) if config.data.validation is not None else None
    given_validation = validation
    if validation is None and config.data.validation_split > 0:
        train, validation = stratified_split(train, config.data.validation_split, config.seed)
        logger.info("No validation data given: held out %d stratified training examples.", len(validation))
    test = read_for(config, config.data.test) if config.data.test is not None else None
    for ds in (validation, test):
        if ds is not None:
            labels.encode(ds)  # fail now, with the row, on a label outside the set
    counts = Counter(label for ex in train.examples for label in (ex.labels if ex.labels is not None else (ex.label,)))
    absent = labels.absent_from(train)
    if absent:
        logger.warning(
            "%s: data.labels names %s, but no training example has it: the model cannot learn it and macro averages "
            "count its F1 as 0. Remove it from data.labels, or add examples.", train.name, ", ".join(map(repr, absent)))
    logger.info("Train: %d examples, %d labels %s", len(train), len(labels), dict(sorted(counts.items())))
    checks = run_cheap_checks(train, given_validation, test, labels, getattr(config.tokenizer, "max_length", None)) if config.data.checks else []
    return Splits(train, validation, test, labels, checks)


def examples_from_texts(texts: list[str], pairs: list[str] | None = None) -> list[Example]:
    if pairs is not None and len(pairs) != len(texts):
        raise DataError(f"Got {len(texts)} texts but {len(pairs)} second texts of pairs; they must match.")
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"text {i + 1} is {type(text).__name__}, expected a string.")
        if pairs is not None and not isinstance(pairs[i], str):
            raise DataError(f"second text {i + 1} of the pairs is {type(pairs[i]).__name__}, expected a string.")
        out.append(Example(text=text, text_pair=pairs[i] if pairs is not None else None, row=i + 1))
    return out
