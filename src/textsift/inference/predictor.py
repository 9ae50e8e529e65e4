"""The Predictor: a loaded model directory that turns texts into labels and probabilities.

Predictor = tokenizer (the same text-to-ids step as training) + :class:`~textsift.inference.runtime.Runtime`
(the network: torch, or an exported ONNX graph) + calibration + decision. The CLI, the Python API
(``textsift.load``) and the server all use it. Nothing here imports training code, nor torch: the torch
runtime brings it in only when chosen.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from textsift.batching import EncodedDataset, collate, eval_batches
from textsift.data.example import Example
from textsift.errors import ConfigError, DataError
from textsift.evaluation.calibration import Calibration
from textsift.evaluation.metrics import sigmoid, softmax
from textsift.evaluation.thresholds import Decision, default_decision
from textsift.inference.runtime import Runtime, load_runtime
from textsift.text.base import Tokenizer

if TYPE_CHECKING:
    from textsift.config import Config
    from textsift.inference.settings import InferenceConfig


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
    """A trained model ready to predict: tokenizer, runtime, calibration and decision thresholds.

    ``textsift.load(model_dir)`` gives one; ``predict(texts)`` returns one prediction per text, in order.
    ``runtime``: a :class:`Runtime`, or a torch network (run by the torch runtime on ``device``).
    ``config``: the settings prediction reads (task, reader, label delimiter, tokenizer, eval batch size): the
    full :class:`~textsift.config.Config`, or, loaded from a directory, its light
    :class:`~textsift.inference.settings.InferenceConfig` view (:meth:`full_config` reads the rest).
    """

    def __init__(
        self, config: Config | InferenceConfig, runtime: Runtime | Any, tokenizer: Tokenizer, labels: list[str],
        meta: dict[str, Any] | None = None, device: str = "cpu", calibration: Calibration | None = None,
        decision: Decision | None = None,
    ) -> None:
        if not isinstance(runtime, Runtime):  # a torch network
            from textsift.backends.torch.runtime import TorchRuntime

            runtime = TorchRuntime(runtime, device)
        self.config = config
        self.runtime = runtime
        self.tokenizer = tokenizer
        self.label_names = list(labels)
        self.meta = meta or {}
        self.path: Path | None = None  # the model directory, when loaded from one
        self.calibration = calibration  # temperature scaling, when fitted
        self.multilabel = config.task == "multilabel"
        self.decision = decision  # thresholds (multilabel; binary when tuned)

    @property
    def model(self) -> Any:
        """The torch network (torch runtime only)."""
        model = getattr(self.runtime, "model", None)
        if model is None:
            raise AttributeError(f"The '{self.runtime.name}' runtime has no torch network; load with runtime='torch' for one.")
        return model

    @property
    def input_format(self) -> str:
        return self.runtime.input_format

    def full_config(self) -> Config:
        """The complete config (every component: this imports torch); loaded from the model directory if need be."""
        from textsift.config import Config

        if isinstance(self.config, Config):
            return self.config
        full = getattr(self.runtime, "config", None)
        if isinstance(full, Config):
            return full
        if self.path is None:
            raise ConfigError("This predictor has no complete config and no model directory to read one from.")
        from textsift.modeldir import load_config_from

        return load_config_from(self.path)

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
    def load(cls, path: str | Path, device: str = "cpu", runtime: str = "auto", num_threads: int | None = None) -> "Predictor":
        """Load a model directory (or a run directory holding ``model/``) with the runtime ``runtime`` (see
        :mod:`textsift.inference.runtime`; ``auto``: the exported ONNX graph when there is one and onnxruntime
        is installed, else torch). ``num_threads``: CPU threads of the runtime (default: its own)."""
        from textsift.inference.settings import load_inference_config
        from textsift.modeldir import check_model_dir, load_labels, load_meta, load_tokenizer

        model_dir = check_model_dir(path)
        config = load_inference_config(model_dir)
        labels = load_labels(model_dir)
        meta = load_meta(model_dir)
        tokenizer = load_tokenizer(model_dir, config)
        engine = load_runtime(model_dir, runtime, labels=labels, tokenizer=tokenizer, device=device, num_threads=num_threads)
        predictor = cls(config, engine, tokenizer, labels, meta, device, Calibration.load(model_dir), Decision.load(model_dir))
        predictor.path = model_dir
        return predictor

    def encode(self, examples: list[Example], labels: np.ndarray | None = None) -> EncodedDataset:
        """The text-to-ids step, the same one training used."""
        return EncodedDataset(self.tokenizer.encode(examples), labels)

    def logits(self, examples: list[Example], batch_size: int | None = None) -> np.ndarray:
        """Logits for every example, in order (batches are length-sorted inside, for the least padding)."""
        out = np.zeros((len(examples), len(self.label_names)), np.float32)
        if not examples:
            return out
        data = self.encode(examples)
        for index in eval_batches(data.ids.lengths, batch_size or self.config.trainer.eval_batch_size):
            out[index] = self.runtime.logits(collate(data.ids, index, self.runtime.input_format))
        return out

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
        from textsift.data.loading import examples_from_texts

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


def load(path: str | Path, device: str = "cpu", runtime: str = "auto", num_threads: int | None = None) -> Predictor:
    """Load a model directory (or a run directory holding ``model/``) for prediction (see :meth:`Predictor.load`)."""
    return Predictor.load(path, device, runtime, num_threads)
