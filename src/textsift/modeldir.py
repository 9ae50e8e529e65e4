"""The model directory: everything evaluate, predict and inspect need, and nothing that runs code on load.

::

    model/
      config.yaml          the complete, resolved config of the run
      model.safetensors    the weights
      labels.json          the label set, in order
      tokenizer/           the fitted tokenizer (vocab.json, ngrams.safetensors or tokenizer.json)
      meta.json            package versions, git commit, data fingerprints, final metrics
      calibration.json     the fitted temperature (only with temperature scaling)
      thresholds.json      decision thresholds (multilabel; binary with a tuned positive-class threshold)
      model.onnx           the exported graph (``textsift export``; the onnx runtime runs it)
      model.int8.onnx      its int8 copy (``--quantize int8``)
      onnx.json            what was exported, from which weights, with which settings

Prediction reads the config, labels, metadata and tokenizer without torch (the onnx runtime needs no more);
only the torch network and its weights (:func:`load_network`) import torch.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import yaml

from textsift.errors import ConfigError, ModelDirError
from textsift.util import atomic_write_bytes, atomic_write_text, replace_dir

if TYPE_CHECKING:  # torch, and the full config with every registered component, only where weights are read or written
    import torch

    from textsift.config import Config
    from textsift.evaluation.calibration import Calibration
    from textsift.evaluation.thresholds import Decision
    from textsift.inference.settings import InferenceConfig
    from textsift.text.base import Tokenizer

FILES = {
    "config.yaml": "the resolved config",
    "model.safetensors": "the model weights",
    "labels.json": "the label set",
    "meta.json": "the training metadata",
}


def find_model_dir(path: str | Path) -> Path:
    """Accept a model directory or a run directory holding one in ``model/``."""
    path = Path(path)
    if not path.exists():
        raise ModelDirError(f"Model directory '{path}' does not exist.")
    if not (path / "model.safetensors").exists() and (path / "model" / "config.yaml").is_file():
        return path / "model"  # a run directory (a model directory holds model.safetensors itself)
    return path


def save_model_dir(
    path: Path, *, config: Config, model: torch.nn.Module, tokenizer: Tokenizer, labels: list[str], meta: dict[str, Any],
    calibration: Calibration | None = None, decision: Decision | None = None,
) -> None:
    """Write the directory next to ``path`` and move it into place, so a crash never leaves half of one."""
    from textsift.config import dump_yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        os.chmod(tmp, 0o755)
        atomic_write_text(tmp / "config.yaml", dump_yaml(config))
        if hasattr(model, "save_weights"):  # a backend's runtime that writes its own model.safetensors (flax)
            model.save_weights(tmp)
        else:
            from safetensors.torch import save

            state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            atomic_write_bytes(tmp / "model.safetensors", save(state, metadata={"format": "pt"}))
        atomic_write_text(tmp / "labels.json", json.dumps({"labels": labels}, ensure_ascii=False, indent=1))
        (tmp / "tokenizer").mkdir()
        tokenizer.save(tmp / "tokenizer")
        config.model.save_extra(model, tmp)  # type: ignore[attr-defined]
        atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=1, default=str))
        if calibration is not None:
            calibration.save(tmp)
        if decision is not None:
            decision.save(tmp)
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _require(path: Path, name: str) -> Path:
    file = path / name
    if not file.exists():
        raise ModelDirError(
            f"{path}: missing {name} ({FILES.get(name, 'a required file')}). The model directory is incomplete: "
            "copy the whole directory that training wrote, or train again."
        )
    return file


def load_raw_config(path: Path) -> dict[str, Any]:
    """The settings in ``config.yaml``, not yet validated (a damaged file is a :class:`ModelDirError`)."""
    try:
        raw = yaml.safe_load(_require(path, "config.yaml").read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ModelDirError(f"{path}/config.yaml is damaged: not YAML ({getattr(exc, 'problem', None) or exc}{where}). "
                            "Copy it again from the directory training wrote, or train again.") from None
    if not isinstance(raw, dict):
        raise ModelDirError(f"{path}/config.yaml is damaged: expected a mapping of settings, found {type(raw).__name__}. "
                            "Copy it again from the directory training wrote, or train again.")
    if isinstance(raw.get("trainer"), dict):
        # callbacks act during training only; predicting must not need their (plugin) modules
        raw["trainer"]["callbacks"] = []
    return raw


def load_config_from(path: Path) -> Config:
    """The complete config of a model directory (this imports every registered component, torch included)."""
    from textsift.config import resolve

    raw = load_raw_config(path)
    try:
        return resolve(raw, source=str(path / "config.yaml"))
    except ConfigError as exc:
        raise ModelDirError(f"{path}/config.yaml does not validate (made by another textsift version?): {exc}") from None


def read_json_file(path: Path, name: str, expected: str) -> Any:
    """A JSON file of the model directory; not JSON is a :class:`ModelDirError` naming it and what it should hold."""
    file = _require(path, name)
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelDirError(f"{file} is damaged: not JSON ({str(exc).splitlines()[0]}); it should hold {expected}. "
                            "Copy it again from the directory training wrote, or train again.") from None


def load_labels(path: Path) -> list[str]:
    expected = 'the label set, {"labels": ["name", ...]}'
    raw = read_json_file(path, "labels.json", expected)
    labels = raw.get("labels") if isinstance(raw, dict) else None
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x for x in labels):
        raise ModelDirError(f"{path / 'labels.json'} is damaged: expected {expected} with at least two names, "
                            f"found {json.dumps(raw)[:80]}. Copy it again from the directory training wrote, or train again.")
    if len(set(labels)) != len(labels):
        raise ModelDirError(f"{path / 'labels.json'} is damaged: a label name occurs twice. Copy it again, or train again.")
    return labels


def _weights_error(weights_file: Path, labels_file: Path, model: torch.nn.Module, weights: dict[str, torch.Tensor],
                   num_labels: int, exc: Exception) -> ModelDirError:
    """Say which file is wrong: labels.json when the weights' output size differs from its label count."""
    state = model.state_dict()
    for key, tensor in weights.items():
        expected = state.get(key)
        if expected is not None and tuple(expected.shape) != tuple(tensor.shape) and expected.shape and expected.shape[0] == num_labels:
            return ModelDirError(
                f"{labels_file} lists {num_labels} labels, but {weights_file.name} has {tensor.shape[0]} outputs ({key}): "
                "the files come from different models. Copy the whole directory that training wrote, or train again."
            )
    return ModelDirError(f"{weights_file}: cannot load the weights ({str(exc).splitlines()[0]}).")


def check_model_dir(path: str | Path) -> Path:
    """The model directory ``path`` names (or holds in ``model/``); a file is an error."""
    path = find_model_dir(path)
    if not path.is_dir():
        raise ModelDirError(f"'{path}' is a file; give the model directory (the folder holding config.yaml and model.safetensors).")
    return path


def load_meta(path: Path) -> dict[str, Any]:
    meta = read_json_file(path, "meta.json", "the training metadata (a JSON object)")
    if not isinstance(meta, dict):
        raise ModelDirError(f"{path / 'meta.json'} is damaged: expected a JSON object, found {type(meta).__name__}. "
                            "Copy it again from the directory training wrote, or train again.")
    return meta


def load_tokenizer(path: Path, config: Config | InferenceConfig) -> Tokenizer:
    """The fitted tokenizer saved in ``path/tokenizer``, built from the config's tokenizer settings."""
    tokenizer = config.tokenizer.build()  # type: ignore[attr-defined]
    try:
        tokenizer.load(_require(path, "tokenizer"))
    except ModelDirError:
        raise
    except Exception as exc:  # each tokenizer library has its own errors for a damaged file
        raise ModelDirError(f"{path / 'tokenizer'}: cannot load the tokenizer ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
                            "Copy the whole directory that training wrote, or train again.") from None
    return tokenizer


def load_model_dir(path: str | Path) -> tuple[Config, torch.nn.Module, Tokenizer, list[str], dict[str, Any]]:
    """Load and check a model directory: every problem names the file and what is wrong with it."""
    path = check_model_dir(path)
    config = load_config_from(path)
    labels = load_labels(path)
    meta = load_meta(path)
    weights_file = _require(path, "model.safetensors")
    tokenizer = load_tokenizer(path, config)
    model = load_network(path, config, tokenizer, labels, weights_file)
    return config, model, tokenizer, labels, meta


def load_network(path: Path, config: Config, tokenizer: Tokenizer, labels: list[str], weights_file: Path | None = None) -> torch.nn.Module:
    """The torch network of a model directory with its weights, in eval mode."""
    from safetensors.torch import load_file

    weights_file = weights_file or _require(path, "model.safetensors")
    model = config.model.build_from_dir(  # type: ignore[attr-defined]
        path, vocab_size=tokenizer.vocab_size, num_labels=len(labels), tokenizer=tokenizer
    )
    try:
        weights = load_file(str(weights_file))
    except Exception as exc:  # safetensors raises its own error types for a damaged file
        raise ModelDirError(f"{weights_file}: cannot load the weights ({str(exc).splitlines()[0]}).") from None
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:  # weights of another shape or other names
        raise _weights_error(weights_file, path / "labels.json", model, weights, len(labels), exc) from None
    model.eval()
    return model
