"""The Predictor: a loaded model directory that turns texts into labels and probabilities.

The CLI, the Python API (``textsift.load``) and the server all use it, with the same text-to-ids
step as training.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from textsift.batching import EncodedDataset
from textsift.config import Config
from textsift.data.example import Example
from textsift.data.loading import examples_from_texts
from textsift.errors import ConfigError, DataError
from textsift.evaluation.calibration import Calibration
from textsift.evaluation.metrics import sigmoid, softmax
from textsift.evaluation.thresholds import Decision, default_decision
from textsift.modeldir import find_model_dir, load_model_dir
from textsift.text.base import Tokenizer
from textsift.training.trainer import predict_logits, resolve_device


EMPTY_POLICIES = ("error", "skip", "predict")


def is_empty(example: Example) -> bool:
    """An example with no text to classify: an empty or whitespace text (or second text of a pair)."""
    return not example.text.strip() or (example.text_pair is not None and not example.text_pair.strip())


@dataclass
class Predictions:
    """Predicted labels and the probability of every label (columns in ``label_names`` order).

    Single-label: ``labels[i]`` is one label. Multilabel: ``labels[i]`` is the list of chosen labels
    (in label-set order) and the probabilities are independent per label. One entry per input, in input
    order; an input skipped by the ``on_empty="skip"`` policy has the label None, probabilities NaN and
    ``skipped[i]`` True.
    """

    labels: list[Any]
    probabilities: np.ndarray
    label_names: list[str]
    multilabel: bool = False
    skipped: list[bool] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def is_skipped(self, i: int) -> bool:
        return bool(self.skipped is not None and self.skipped[i])

    def top_k(self, k: int) -> list[list[tuple[str, float]]]:
        k = min(k, len(self.label_names))
        order = np.argsort(-np.nan_to_num(self.probabilities, nan=-1.0), axis=1, kind="stable")[:, :k]
        return [[] if self.is_skipped(i) else [(self.label_names[j], float(row[j])) for j in idx]
                for i, (row, idx) in enumerate(zip(self.probabilities, order))]

    def records(self, top_k: int | None = None) -> Iterator[dict[str, Any]]:
        key = "labels" if self.multilabel else "label"
        tops = self.top_k(top_k) if top_k is not None else None
        for i, (label, row) in enumerate(zip(self.labels, self.probabilities)):
            if self.is_skipped(i):
                yield {key: None, "skipped": "empty text"}
            elif tops is not None:
                yield {key: label, "top_k": [{"label": n, "probability": p} for n, p in tops[i]]}
            else:
                yield {key: label, "probabilities": {n: float(p) for n, p in zip(self.label_names, row)}}


class Predictor:
    """A trained model ready to predict: tokenizer, network, calibration and decision thresholds.

    ``textsift.load(model_dir)`` gives one; ``predict(texts)`` returns one prediction per text, in order.
    """

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

    @property
    def pairs(self) -> bool:
        """The model classifies text pairs: every input needs its second text."""
        return self.config.data.reader.text_pair_column is not None  # type: ignore[attr-defined]

    def check(self, examples: Sequence[Example], on_empty: str = "error", where: str = "text") -> None:
        """Refuse inputs the model would silently get wrong: a missing (or extra) second text, an empty text."""
        if on_empty not in EMPTY_POLICIES:
            raise ConfigError(f"on_empty must be one of {', '.join(EMPTY_POLICIES)}, got {on_empty!r}.")
        for i, ex in enumerate(examples):
            name = f"{where} {ex.row}" if ex.row else f"{where} {i + 1}"
            if self.pairs and ex.text_pair is None:
                raise DataError(
                    f"{name}: this model classifies text pairs (trained with a second text in column "
                    f"'{self.config.data.reader.text_pair_column}'), but no second text was given. "  # type: ignore[attr-defined]
                    "Give both texts (Python: pairs=[...]; stdin: TEXT<tab>SECOND TEXT; files: the same column)."
                )
            if not self.pairs and ex.text_pair is not None:
                raise DataError(f"{name}: a second text was given, but this model classifies single texts. Give the text alone.")
            if on_empty == "error" and is_empty(ex):
                raise DataError(
                    f"{name}: the text is empty. Remove it, or choose what to do with empty texts "
                    "(predict: --on-empty skip|predict; Python: on_empty='skip' or 'predict')."
                )

    def predict_examples(self, examples: list[Example], batch_size: int | None = None, on_empty: str = "error") -> Predictions:
        """One prediction per example, in order (see :meth:`check` and ``on_empty``)."""
        self.check(examples, on_empty)
        skipped = [is_empty(ex) for ex in examples] if on_empty == "skip" else None
        kept = [ex for ex, s in zip(examples, skipped) if not s] if skipped is not None else examples
        logits = self.logits(kept, batch_size)
        probs = self.probabilities(logits)
        labels = self.decide(probs)
        if skipped is None or not any(skipped):
            return Predictions(labels, probs, self.label_names, self.multilabel, skipped)
        full = np.full((len(examples), len(self.label_names)), np.nan, np.float32)
        index = np.flatnonzero(~np.asarray(skipped))
        full[index] = probs
        all_labels: list[Any] = [None] * len(examples)
        for j, i in enumerate(index):
            all_labels[i] = labels[j]
        return Predictions(all_labels, full, self.label_names, self.multilabel, skipped)

    def predict(
        self, texts: Sequence[str] | str, pairs: Sequence[str] | str | None = None, batch_size: int | None = None,
        on_empty: str = "error",
    ) -> Predictions:
        """Labels and probabilities for ``texts`` (and second texts ``pairs`` for pair models), one per text, in order.

        ``on_empty``: an empty or whitespace text is an error ("error"), gets no prediction ("skip": label None,
        probabilities NaN) or is predicted like any text ("predict").
        """
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(pairs, str):
            pairs = [pairs]
        return self.predict_examples(examples_from_texts(list(texts), list(pairs) if pairs is not None else None), batch_size, on_empty)

    def predict_stream(
        self, examples: Iterable[Example], chunk_size: int = 10_000, on_empty: str = "error"
    ) -> Iterator[tuple[list[Example], Predictions]]:
        """Predict over any number of examples in chunks: memory stays bounded by ``chunk_size``."""
        chunk: list[Example] = []
        for ex in examples:
            chunk.append(ex)
            if len(chunk) >= chunk_size:
                yield chunk, self.predict_examples(chunk, on_empty=on_empty)
                chunk = []
        if chunk:
            yield chunk, self.predict_examples(chunk, on_empty=on_empty)


def load(path: str | Path, device: str = "cpu") -> Predictor:
    """Load a model directory (or a run directory holding ``model/``) for prediction."""
    return Predictor.load(path, device)


def _cell(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, (list, dict)) else ("" if value is None else value)


#: every key a prediction record may have besides the kept input columns and the score columns
RECORD_KEYS = ("row", "text", "text_pair", "label", "labels", "skipped", "top_k", "probabilities")


def score_columns(label_names: Sequence[str], top_k: int | None) -> list[str]:
    """The CSV columns of the scores: the k most probable labels and their probabilities, or every label's."""
    k = min(top_k, len(label_names)) if top_k else 0  # no more columns than labels
    if k:
        return [f"top{i + 1}" for i in range(k)] + [f"top{i + 1}_probability" for i in range(k)]
    return [f"p_{n}" for n in label_names]


def write_predictions(
    out: IO[str], fmt: str, predictor: Any, examples_iter: Iterator[Example], *, top_k: int | None, chunk: int,
    on_empty: str = "error", keep_columns: tuple[str, ...] = (),
) -> int:
    """Write one record per example, in order; returns how many."""
    names = predictor.label_names
    top_k = min(top_k, len(names)) if top_k else top_k  # no more columns than labels
    delimiter = predictor.config.data.label_delimiter
    label_key = "labels" if predictor.multilabel else "label"
    cell = (lambda v: delimiter.join(v) if v is not None else "") if predictor.multilabel else (lambda v: "" if v is None else v)
    writer = None
    count = 0
    for examples, preds in predictor.predict_stream(examples_iter, chunk, on_empty=on_empty):
        if fmt == "csv":
            if writer is None:
                writer = csv.writer(out, lineterminator="\n")
                cols = ["row", *keep_columns, "text"] + (["text_pair"] if predictor.pairs else []) + [label_key]
                cols += score_columns(names, top_k)
                if on_empty == "skip":
                    cols.append("skipped")
                writer.writerow(cols)
            tops = preds.top_k(top_k) if top_k else None
            for j, ex in enumerate(examples):
                row = [ex.row, *(_cell((ex.columns or {}).get(c)) for c in keep_columns), ex.text]
                row += [ex.text_pair] if predictor.pairs else []
                row.append(cell(preds.labels[j]))
                if preds.is_skipped(j):
                    row += [""] * (2 * top_k if top_k else len(names))
                elif tops is not None:
                    row += [n for n, _ in tops[j]] + [f"{p:.6f}" for _, p in tops[j]]
                else:
                    row += [f"{p:.6f}" for p in preds.probabilities[j]]
                if on_empty == "skip":
                    row.append("empty text" if preds.is_skipped(j) else "")
                writer.writerow(row)
        else:
            for ex, record in zip(examples, preds.records(top_k)):
                head: dict[str, Any] = {"row": ex.row, **{c: (ex.columns or {}).get(c) for c in keep_columns}, "text": ex.text}
                if predictor.pairs:
                    head["text_pair"] = ex.text_pair
                out.write(json.dumps({**head, **record}, ensure_ascii=False, default=str) + "\n")
        count += len(examples)
    return count
