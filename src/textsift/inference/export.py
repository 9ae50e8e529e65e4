"""Export a model directory to ONNX: ``model.onnx`` (fp32) and, quantized, ``model.int8.onnx``, beside its weights.

The torch backend writes the graph and checks it against the torch network; the onnx backend quantizes it.
The files are written in a temporary folder inside the model directory and moved into place when all of them
are checked, so a failed or interrupted export leaves the directory as it was. ``onnx.json`` records what was
exported from which weights (a sha256 fingerprint), with which versions and settings; ``inspect`` shows it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from textsift.errors import ConfigError, ModelDirError
from textsift.util import atomic_write_text, file_fingerprint

logger = logging.getLogger(__name__)

FORMATS = ("onnx",)
QUANTIZATIONS = ("int8",)
#: the packages export needs, all installed by the extra textsift[onnx]
PACKAGES = ("onnx", "onnxscript", "onnxruntime")


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    """``onnx.json`` of a model directory, or None when it has none."""
    from textsift.backends.onnx import MANIFEST

    file = model_dir / MANIFEST
    if not file.is_file():
        return None
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelDirError(f"{file} is damaged: not JSON ({str(exc).splitlines()[0]}). Export again: "
                            f"textsift export {model_dir} --format onnx.") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ModelDirError(f"{file} is damaged: expected a JSON object with 'files'. Export again: textsift export {model_dir} --format onnx.")
    return manifest


def export_model_dir(path: str | Path, *, format: str = "onnx", quantize: str | None = None,
                     activations: str = "per_token") -> dict[str, Any]:
    """Export the model directory ``path`` (see the module docstring); returns the manifest written. ``activations``:
    how int8 quantizes activations, ``per_token`` or ``per_tensor`` (see ``textsift.backends.onnx.quantize``)."""
    from textsift.backends.onnx import GRAPHS, MANIFEST
    from textsift.modeldir import check_model_dir, load_config_from, load_labels, load_network, load_tokenizer

    if format not in FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {format!r}.")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"--quantize: expected one of {', '.join(QUANTIZATIONS)}, got {quantize!r}.")
    from textsift.backends.onnx.quantize import ACTIVATIONS

    if activations not in ACTIVATIONS:
        raise ConfigError(f"--int8-activations: expected one of {', '.join(ACTIVATIONS)}, got {activations!r}.")
    from textsift.util import require_extra

    require_extra("onnx", PACKAGES, "export to ONNX")
    model_dir = check_model_dir(path)
    from textsift.inference.runtime import weights_format

    if weights_format(model_dir) == "flax":  # the ONNX export traces torch networks
        raise ModelDirError(f"{model_dir}: a flax model (backend: flax); export to ONNX is for torch models. Predict and "
                            "serve it with the flax runtime, or train the same config with backend: torch to export it.")
    config = load_config_from(model_dir)
    labels = load_labels(model_dir)
    tokenizer = load_tokenizer(model_dir, config)
    model = load_network(model_dir, config, tokenizer, labels)
    from textsift.backends.onnx.quantize import quantize_int8
    from textsift.backends.torch.onnx_export import OPSET, check_dynamic, check_parity, export_onnx, longest_input

    max_length = longest_input(model, int(getattr(config.tokenizer, "max_length", 512)))
    vocab_size = int(tokenizer.vocab_size)
    multilabel = config.task == "multilabel"
    previous = read_manifest(model_dir) if (model_dir / MANIFEST).is_file() else None
    source = file_fingerprint(model_dir / "model.safetensors")
    manifest: dict[str, Any] = {
        "format": "onnx", "opset": OPSET, "input_format": getattr(model, "input_format", "padded"),
        "source": {"file": "model.safetensors", "fingerprint": source},
        "versions": {p: version(p) for p in ("torch", *PACKAGES)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix=".export.", dir=model_dir))
    try:
        started = time.perf_counter()
        fp32 = tmp / GRAPHS["fp32"]
        export_onnx(model, fp32, vocab_size=vocab_size, max_length=max_length)
        check_dynamic(fp32)
        diff = check_parity(model, fp32, vocab_size=vocab_size, max_length=max_length, multilabel=multilabel)
        manifest["files"][fp32.name] = {"precision": "fp32", "bytes": fp32.stat().st_size, "parity_max_probability_diff": diff}
        logger.info("Exported %s in %.1f s (probabilities within %.1e of torch)", fp32.name, time.perf_counter() - started, diff)
        if quantize == "int8":
            int8 = tmp / GRAPHS["int8"]
            settings = quantize_int8(fp32, int8, activations=activations)
            manifest["files"][int8.name] = {"precision": "int8", "bytes": int8.stat().st_size, "quantization": settings}
            logger.info("Quantized %s: %.1f MB -> %.1f MB", int8.name, fp32.stat().st_size / 1e6, int8.stat().st_size / 1e6)
        elif previous is not None and previous.get("source", {}).get("fingerprint") == source and GRAPHS["int8"] in previous["files"]:
            manifest["files"][GRAPHS["int8"]] = previous["files"][GRAPHS["int8"]]  # still the quantized copy of these weights
        for name in manifest["files"]:
            if (tmp / name).is_file():
                os.chmod(tmp / name, 0o644)
                os.replace(tmp / name, model_dir / name)
        stale = model_dir / GRAPHS["int8"]
        if GRAPHS["int8"] not in manifest["files"] and stale.is_file():
            stale.unlink()  # quantized from other weights
        atomic_write_text(model_dir / MANIFEST, json.dumps(manifest, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest
