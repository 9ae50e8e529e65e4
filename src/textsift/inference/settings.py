"""The part of a model directory's config that prediction needs, read without building any network.

The full :class:`~textsift.config.Config` validates every component (model, loss, scheduler, callbacks), and so
imports every module that registers one, torch included. Prediction needs only the tokenizer, the reader, the
task and the label delimiter: :class:`InferenceConfig` validates those (with the same component classes) and
ignores the rest, so a model served by ONNX Runtime never imports torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from textsift import registry
from textsift.config.spec import Component, Section
from textsift.errors import ConfigError, ModelDirError

#: the modules registering what prediction needs: readers and tokenizers (none of them imports torch)
INFERENCE_BUILTINS = (
    "textsift.data.readers", "textsift.text.ngrams", "textsift.text.words", "textsift.text.subword", "textsift.text.pretrained",
    "textsift.text.tiktoken_bpe",
)


def load_inference_builtins() -> None:
    """Import the modules that register the built-in readers and tokenizers (each once; cheap after)."""
    for module in INFERENCE_BUILTINS:
        importlib.import_module(module)


class _View(Section):
    model_config = ConfigDict(extra="ignore", frozen=True, protected_namespaces=())


class InferenceData(_View):
    reader: Component(registry.readers, "auto") = Field(default_factory=lambda: "auto", validate_default=True)  # type: ignore[valid-type]
    label_delimiter: str = ","


class InferenceTrainer(_View):
    eval_batch_size: int = Field(512, ge=1)


class InferenceModel(_View):
    type: str = "bag"


class InferenceConfig(_View):
    """``task``, ``data.reader``, ``data.label_delimiter``, ``tokenizer``, ``model.type`` and
    ``trainer.eval_batch_size`` of a saved config: the names are those of :class:`~textsift.config.Config`."""

    task: Literal["single_label", "multilabel"] = "single_label"
    data: InferenceData = Field(default_factory=InferenceData)
    tokenizer: Component(registry.tokenizers, "hashed_ngrams") = Field(  # type: ignore[valid-type]
        default_factory=lambda: "hashed_ngrams", validate_default=True
    )
    model: InferenceModel = Field(default_factory=InferenceModel)
    trainer: InferenceTrainer = Field(default_factory=InferenceTrainer)


def inference_config(raw: dict[str, Any], source: str) -> InferenceConfig:
    """Validate the prediction settings of a raw config mapping (``source`` names it in errors)."""
    from textsift.config.loader import format_validation_error

    load_inference_builtins()
    for module in raw.get("imports", []) or []:  # a tokenizer or reader of the user's own
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ModelDirError(f"{source}: imports: cannot import '{module}' ({exc}). Install it or fix the module name.") from None
    model = raw.get("model")
    view = {**raw, "model": {"type": model} if isinstance(model, str) else model} if model is not None else raw
    try:
        return InferenceConfig.model_validate(view)
    except ValidationError as exc:
        message = format_validation_error(exc, view, source)
        raise ModelDirError(f"{message} (made by another textsift version?)") from None
    except ConfigError as exc:
        raise ModelDirError(str(exc)) from None


def load_inference_config(model_dir: Path) -> InferenceConfig:
    """The prediction settings of the model directory ``model_dir`` (its ``config.yaml``)."""
    from textsift.modeldir import load_raw_config

    return inference_config(load_raw_config(model_dir), str(model_dir / "config.yaml"))
