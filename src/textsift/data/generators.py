"""Registered dataset generators: synthetic tasks that need no file."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from textsift import registry
from textsift.config.spec import Spec
from textsift.data.example import Dataset, Example


class DatasetSpec(Spec):
    def generate(self) -> Dataset:
        raise NotImplementedError


@registry.datasets.register("sort_detection")
class SortDetection(DatasetSpec):
    """Is a sequence of characters sorted? Texts are space-separated characters ("a c f k").

    Half the examples are sorted. Of the unsorted half, ``hard_fraction`` are sorted sequences with one
    adjacent pair swapped, so the task is not solved by a glance at the first characters.
    """

    type: Literal["sort_detection"] = "sort_detection"
    size: int = Field(1000, ge=2, description="Number of examples.")
    min_length: int = Field(4, ge=2)
    max_length: int = Field(10, ge=2)
    alphabet: str = Field("abcdefghijklmnopqrstuvwxyz", min_length=2)
    hard_fraction: float = Field(0.5, ge=0.0, le=1.0)
    seed: int = 0

    @model_validator(mode="after")
    def _lengths(self) -> "SortDetection":
        if self.max_length < self.min_length:
            raise ValueError(f"max_length ({self.max_length}) must be >= min_length ({self.min_length})")
        return self

    def generate(self) -> Dataset:
        rng = np.random.default_rng(self.seed)
        chars = np.array(list(self.alphabet))
        examples = []
        for i in range(self.size):
            n = int(rng.integers(self.min_length, self.max_length + 1))
            seq = np.sort(rng.choice(len(chars), size=n, replace=n > len(chars)))
            label = "sorted"
            if i % 2 == 1:
                label = "unsorted"
                if rng.random() < self.hard_fraction:
                    candidates = np.nonzero(seq[:-1] != seq[1:])[0]
                    if len(candidates) == 0:
                        seq = rng.permutation(seq)
                    else:
                        j = int(rng.choice(candidates))
                        seq[j], seq[j + 1] = seq[j + 1], seq[j]
                else:
                    while np.all(seq[:-1] <= seq[1:]):
                        seq = rng.permutation(seq)
            examples.append(Example(text=" ".join(chars[seq]), label=label, row=i + 1))
        return Dataset(f"sort_detection(size={self.size}, seed={self.seed})", examples)
