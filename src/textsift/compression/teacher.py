"""A teacher's outputs on a set of texts, computed once per (teacher, text set) and cached by content.

The cache key is the sha256 of the teacher's files (weights, config, labels, tokenizer) and of every text in order,
so a retrained teacher or a changed text set never reads stale outputs. Entries are safetensors files.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from textsift.data.example import Example
from textsift.errors import ConfigError, ModelDirError
from textsift.util import atomic_write_bytes, file_fingerprint

logger = logging.getLogger(__name__)

#: the files of a model directory that decide its outputs
_TEACHER_FILES = ("config.yaml", "labels.json", "model.safetensors", "calibration.json")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "textsift" / "teacher"


def teacher_fingerprint(model_dir: Path, runtime: str = "torch") -> str:
    """sha256 over the files that decide the teacher's logits (the tokenizer's files, and the graph the onnx
    runtime runs, included)."""
    h = hashlib.sha256(runtime.encode() + b"\0")
    names = _TEACHER_FILES + (("model.onnx",) if runtime == "onnx" else ())
    files = [model_dir / name for name in names if (model_dir / name).is_file()]
    tokenizer_dir = model_dir / "tokenizer"
    if tokenizer_dir.is_dir():
        files += sorted(p for p in tokenizer_dir.rglob("*") if p.is_file())
    for path in files:
        h.update(str(path.relative_to(model_dir)).encode() + b"\0" + file_fingerprint(path).encode() + b"\0")
    return h.hexdigest()


def texts_fingerprint(examples: Sequence[Example]) -> str:
    """sha256 of the texts (and text pairs) in order."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(ex.text.encode("utf-8") + b"\x1f" + (ex.text_pair or "").encode("utf-8") + b"\x1e")
    return h.hexdigest()


class TeacherOutputs:
    """Logits of one teacher (a model directory) on text sets, through its Predictor, cached on disk."""

    def __init__(self, model_dir: Path, cache_dir: Path | None = None, batch_size: int = 64, runtime: str = "torch") -> None:
        """``runtime``: what computes the logits, ``torch`` or ``onnx`` (the fp32 graph of ``textsift export``,
        checked against torch within 1e-4 at export: faster on a CPU); it is part of the cache key."""
        from textsift.inference.predictor import Predictor

        if runtime not in ("torch", "onnx"):
            raise ConfigError(f"distill.teacher_runtime: expected torch or onnx, got {runtime!r}.")
        self.model_dir = Path(model_dir)
        self.runtime = runtime
        self.predictor = Predictor.load(self.model_dir, runtime=runtime)
        self.label_names: list[str] = list(self.predictor.label_names)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.batch_size = batch_size
        self.fingerprint = teacher_fingerprint(self.model_dir, runtime)
        self.computed = 0  # text sets computed (not read from the cache), for tests and logs

    def logits(self, examples: Sequence[Example]) -> np.ndarray:
        """The teacher's raw logits for ``examples`` (rows in order, columns in the teacher's label order)."""
        from safetensors.numpy import load_file, save

        key = hashlib.sha256(f"{self.fingerprint}:{texts_fingerprint(examples)}".encode()).hexdigest()
        file = self.cache_dir / f"{key[:32]}.safetensors"
        if file.is_file():
            try:
                cached = load_file(str(file))["logits"]
            except Exception as exc:  # safetensors has its own error types for a damaged file
                raise ModelDirError(f"{file}: damaged teacher-output cache entry ({str(exc).splitlines()[0]}). "
                                    "Delete the file; it is computed again.") from None
            if cached.shape == (len(examples), len(self.label_names)):
                logger.info("Teacher outputs for %d texts: from the cache (%s)", len(examples), file)
                return cached
            logger.warning("%s holds %s outputs for %d texts: computing them again.", file, cached.shape, len(examples))
        logger.info("Teacher outputs for %d texts: computing", len(examples))
        logits = np.ascontiguousarray(self.predictor.logits(list(examples), batch_size=self.batch_size), dtype=np.float32)
        self.computed += 1
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(file, save({"logits": logits}, metadata={"teacher": str(self.model_dir), "key": key}))
        return logits

    def logits_for(self, examples: Sequence[Example], label_names: Sequence[str]) -> np.ndarray:
        """Logits with columns in ``label_names``' order (the student's); the label sets must be equal."""
        logits = self.logits(examples)
        order = [self.label_names.index(name) for name in label_names]
        return np.ascontiguousarray(logits[:, order])
