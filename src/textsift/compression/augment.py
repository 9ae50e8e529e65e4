"""Augmented training texts for distilling into a small student (Tang et al. 2019, "Distilling Task-Specific
Knowledge from BERT into Simple Neural Networks"): words masked at random, and random n-gram samples.

The teacher labels every copy; the student learns the teacher's outputs on far more texts than the labelled ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from textsift.config.schema import AugmentConfig
from textsift.data.example import Example


def augment_text(words: list[str], rng: np.random.Generator, settings: AugmentConfig) -> str:
    """One augmented copy of a text given as words: each word masked with ``mask_prob``; then, with ``ngram_prob``,
    only a random n-gram (n from 1 to 5, at most the text's length) is kept."""
    out = [settings.mask_token if rng.random() < settings.mask_prob else w for w in words]
    if out and rng.random() < settings.ngram_prob:
        n = int(rng.integers(1, min(5, len(out)) + 1))
        start = int(rng.integers(0, len(out) - n + 1))
        out = out[start:start + n]
    return " ".join(out)


def augment(examples: Sequence[Example], settings: AugmentConfig, seed: int) -> list[Example]:
    """``settings.copies`` augmented copies of each example (without labels), distinct from the originals and each
    other; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    seen = {ex.text for ex in examples}
    out: list[Example] = []
    for ex in examples:
        words = ex.text.split()
        if not words:
            continue
        for _ in range(settings.copies):
            text = augment_text(words, rng, settings)
            if text and text not in seen:
                seen.add(text)
                out.append(Example(text=text, row=ex.row))
    return out
