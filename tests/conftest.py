"""Tiny, offline fixtures shared by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textsift.config import load_builtins

load_builtins()

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"

# 16 short texts, two clearly separable classes, for overfitting and round-trip tests.
TINY = [
    ("what a wonderful happy day", "pos"), ("i love this great film", "pos"), ("superb acting and lovely music", "pos"),
    ("a delightful joyful story", "pos"), ("brilliant and charming work", "pos"), ("happy people smile a lot", "pos"),
    ("great fun for the family", "pos"), ("an excellent heartwarming movie", "pos"),
    ("what a terrible sad day", "neg"), ("i hate this awful film", "neg"), ("poor acting and dreadful music", "neg"),
    ("a boring miserable story", "neg"), ("horrible and dull work", "neg"), ("angry people shout a lot", "neg"),
    ("bad news for the family", "neg"), ("an awful depressing movie", "neg"),
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def tiny_jsonl(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "tiny.jsonl", [{"text": t, "label": l} for t, l in TINY])


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    lines = ["text,label"] + [f'"{t}",{l}' for t, l in TINY]
    path = tmp_path / "tiny.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_config(train: Path, model: str = "bag", **overrides: object) -> dict:
    """A raw config that trains fast on the tiny data (validation = train, so val metrics exist)."""
    raw: dict = {
        "data": {"train": str(train), "validation": str(train), "test": str(train)},
        "model": {"type": model},
        "trainer": {"epochs": 30, "early_stopping": None, "batch_size": 8},
    }
    for key, value in overrides.items():
        node = raw
        *parents, last = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return raw
