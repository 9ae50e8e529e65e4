"""The Predictor: a loaded model directory that turns texts into labels and probabilities.

The CLI, the Python API (``textsift.load``) and the server all use it, with the same text-to-ids
step as training.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textsift.batching import EncodedDataset
from textsift.config import Config
from textsift.data.example import Example
from textsift.data.loading import examples_from_texts
from textsift.evaluation.calibration import Calibration
from textsift.evaluation.metrics import sigmoid, softmax
from textsift.evaluation.thresholds import Decision, default_decision
from textsift.modeldir import find_model_dir, load_model_dir
from textsift.text.base import Tokenizer
from textsift.training.trainer import predict_logits, resolve_device


@dataclass
class Predictions:
    """Predicted labels and the probability of every label (columns in ``label_names`` order).

    Single-label: ``labels[i]`` is one label. Multilabel: ``labels[i]`` is the list of chosen labels
    (in label-set order) and the probabilities are independent per label.
    """

    labels: list[Any]
    probabilities: np.ndarray
    label_names: list[str]
    multilabel: bool = False

    def __len__(self) -> int:
        return len(self.labels)

    def top_k(self, k: int) -> list[list[tuple[str, float]]]:
        k = min(k, len(self.label_names))
        order = np.argsort(-self.probabilities, axis=1, kind="stable")[:, :k]
        return [[(self.label_names[j], float(row[j])) for j in idx] for row, idx in zip(self.probabilities, order)]

    def records(self, top_k: int | None = None) -> Iterator[dict[str, Any]]:
        key = "labels" if self.multilabel else "label"
        if top_k is not None:
            for label, tops in zip(self.labels, self.top_k(top_k)):
                yield {key: label, "top_k": [{"label": n, "probability": p} for n, p in tops]}
        else:
            for label, row in zip(self.labels, self.probabilities):
                yield {key: label, "probabilities": {n: float(p) for n, p in zip(self.label_names, row)}}


class Predictor:
    def __init__(
        self, config: Config, model: torch.nn.Module, tokenizer: Tokenizer, labels: list[str],
        meta: dict[str, Any] | None = None, device: str = "cpu", calibration: Calibration | None = None,
        decision: Decision | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.label_names = list(labels)
        self.meta = meta or {}
        self.device = resolve_device(device)
        self.model.to(self.device).eval()
        self.input_format = getattr(model, "input_format", "padded")
        self.path: Path | None = None  # the model directory, when loaded from one
        self.calibration = calibration  # temperature scaling, when fitted
        self.multilabel = config.task == "multilabel"
        self.decision = decision  # thresholds (multilabel; binary when tuned)

    @property
    def temperature(self) -> float:
        return self.calibration.temperature if self.calibration is not None else 1.0

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Softmax (multilabel: per-label sigmoid) of the logits, divided by the fitted temperature if there is one."""
        if self.multilabel:
            return sigmoid(logits, self.temperature).astype(np.float32)
        return softmax(logits, self.temperature).astype(np.float32)

    def decide(self, probabilities: np.ndarray) -> list[Any]:
        """Labels from probabilities: argmax, the binary threshold, or the multilabel thresholds."""
        if not len(probabilities):
            return []
        if self.multilabel:
            decision = self.decision or default_decision("multilabel", len(self.label_names))
            chosen = decision.apply(probabilities)
            return [[self.label_names[j] for j in np.flatnonzero(row)] for row in chosen]
        index = self.decision.apply(probabilities) if self.decision is not None else probabilities.argmax(1)
        return [self.label_names[i] for i in index]

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "Predictor":
        config, model, tokenizer, labels, meta = load_model_dir(path)
        model_dir = find_model_dir(path)
        predictor = cls(config, model, tokenizer, labels, meta, device, Calibration.load(model_dir), Decision.load(model_dir))
        predictor.path = model_dir
        return predictor

    def encode(self, examples: list[Example], labels: np.ndarray | None = None) -> EncodedDataset:
        """The text-to-ids step, the same one training used."""
        return EncodedDataset(self.tokenizer.encode(examples), labels)

    def logits(self, examples: list[Example], batch_size: int | None = None) -> np.ndarray:
        if not examples:
            return np.zeros((0, len(self.label_names)), np.float32)
        bs = batch_size or self.config.trainer.eval_batch_size
        return predict_logits(self.model, self.encode(examples), self.input_format, bs, self.device)

    def predict_examples(self, examples: list[Example], batch_size: int | None = None) -> Predictions:
        logits = self.logits(examples, batch_size)
        probs = self.probabilities(logits)
        return Predictions(self.decide(probs), probs, self.label_names, self.multilabel)

    def predict(
        self, texts: Sequence[str] | str, pairs: Sequence[str] | None = None, batch_size: int | None = None
    ) -> Predictions:
        """Labels and probabilities for ``texts`` (and second texts ``pairs`` for pair tasks)."""
        if isinstance(texts, str):
            texts = [texts]
        return self.predict_examples(examples_from_texts(list(texts), list(pairs) if pairs is not None else None), batch_size)

    def predict_stream(self, examples: Iterable[Example], chunk_size: int = 10_000) -> Iterator[tuple[list[Example], Predictions]]:
        """Predict over any number of examples in chunks: memory stays bounded by ``chunk_size``."""
        chunk: list[Example] = []
        for ex in examples:
            chunk.append(ex)
            if len(chunk) >= chunk_size:
                yield chunk, self.predict_examples(chunk)
                chunk = []
        if chunk:
            yield chunk, self.predict_examples(chunk)


def load(path: str | Path, device: str = "cpu") -> Predictor:
    """Load a model directory (or a run directory holding ``model/``) for prediction."""
    return Predictor.load(path, device)
