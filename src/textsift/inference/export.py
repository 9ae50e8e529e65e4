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

import numpy as np

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


#: how many texts int8's ``auto`` activations are calibrated on (spread over the file)
CALIBRATION_TEXTS = 256


def calibration_batches(config: Any, tokenizer: Any, input_format: str, file: str | Path | None = None,
                        limit: int = CALIBRATION_TEXTS) -> tuple[list[dict[str, Any]], str | None]:
    """Input batches for int8 calibration and the file they came from: ``file``, or else the model's own validation
    file, or else its training file, when its config names one that is still on disk (none: ``[]``, None)."""
    from textsift.batching import EncodedDataset, collate, eval_batches
    from textsift.data.readers import reader_for_file

    if file is not None:
        candidates = [Path(file)]
    else:
        candidates = [Path(s) for s in (config.data.validation, config.data.train) if isinstance(s, (str, Path)) and Path(s).is_file()]
    for path in candidates:
        try:
            examples = reader_for_file(config.data.reader, path).read(path, require_labels=False)
        except Exception:
            if file is not None:
                raise
            logger.info("%s: not readable for int8 calibration; trying the next file", path)
            continue
        examples = examples[:: max(1, len(examples) // limit)][:limit]
        if not examples:
            continue
        data = EncodedDataset(tokenizer.encode(examples), None)
        return [collate(data.ids, index, input_format) for index in eval_batches(data.ids.lengths, 32)], str(path)
    return [], None


def export_model_dir(path: str | Path, *, format: str = "onnx", quantize: str | None = None,
                     activations: str = "auto", calibration: str | Path | None = None) -> dict[str, Any]:
    """Export the model directory ``path`` (see the module docstring); returns the manifest written. ``activations``:
    how int8 quantizes activations, ``auto``, ``per_token`` or ``per_tensor`` (see ``textsift.backends.onnx.quantize``);
    ``calibration``: a data file whose texts ``auto`` calibrates on (default: the model's validation, else training
    file, when still on disk)."""
    from textsift.backends.onnx import GRAPHS, MANIFEST
    from textsift.modeldir import check_model_dir, load_config_from, load_labels, load_network, load_tokenizer

    if format not in FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {format!r}.")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"--quantize: expected one of {', '.join(QUANTIZATIONS)}, got {quantize!r}.")
    from textsift.backends.onnx.quantize import ACTIVATIONS

    if activations not in ACTIVATIONS:
        raise ConfigError(f"--int8-activations: expected one of {', '.join(ACTIVATIONS)}, got {activations!r}.")
    if calibration is not None:
        if quantize != "int8" or activations != "auto":
            raise ConfigError("--int8-calibration is for --quantize int8 with --int8-activations auto (the default); "
                              "add --quantize int8, or leave --int8-calibration out.")
        if not Path(calibration).is_file():
            raise ConfigError(f"--int8-calibration {calibration}: no such file. Give a data file of texts (CSV, TSV, "
                              "JSON Lines, Parquet), or leave it out to calibrate on the model's own validation data.")
    from textsift.util import require_extra

    require_extra("onnx", PACKAGES, "export to ONNX")
    model_dir = check_model_dir(path)
    from textsift.inference.runtime import weights_format

    backend = "flax" if weights_format(model_dir) == "flax" else "torch"
    config = load_config_from(model_dir)
    labels = load_labels(model_dir)
    tokenizer = load_tokenizer(model_dir, config)
    from textsift.backends.onnx.quantize import quantize_int8
    from textsift.backends.torch.onnx_export import OPSET, check_dynamic, check_parity, export_onnx, longest_input

    multilabel = config.task == "multilabel"
    vocab_size = int(tokenizer.vocab_size)
    flax_diff = None
    if backend == "flax":  # the exporter traces torch networks: the torch network of the spec, with these weights
        model, flax_diff = torch_network_of_flax(model_dir, config, tokenizer, labels)
    else:
        model = load_network(model_dir, config, tokenizer, labels)
    max_length = longest_input(model, int(getattr(config.tokenizer, "max_length", 512)))
    previous = read_manifest(model_dir) if (model_dir / MANIFEST).is_file() else None
    source = file_fingerprint(model_dir / "model.safetensors")
    manifest: dict[str, Any] = {
        "format": "onnx", "opset": OPSET, "input_format": getattr(model, "input_format", "padded"),
        "source": {"file": "model.safetensors", "fingerprint": source, "backend": backend},
        "versions": {p: version(p) for p in ("torch", *PACKAGES, *(("jax", "flax") if backend == "flax" else ()))},
        **({"flax_parity_max_probability_diff": flax_diff} if flax_diff is not None else {}),
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
        logger.info("Exported %s in %.1f s (probabilities within %.1e of torch%s)", fp32.name, time.perf_counter() - started, diff,
                    "" if flax_diff is None else f"'s network of the flax weights, itself within {flax_diff:.1e} of flax")
        if quantize == "int8":
            int8 = tmp / GRAPHS["int8"]
            batches, source_file = [], None
            if activations == "auto":
                import onnx

                from textsift.backends.onnx.runtime import INPUT_FORMATS

                names = tuple(i.name for i in onnx.load(str(fp32), load_external_data=False).graph.input)
                batches, source_file = calibration_batches(config, tokenizer, INPUT_FORMATS[names], calibration)
                if not batches:
                    logger.info("No calibration texts (the model's data files are not on disk; --int8-calibration FILE gives "
                                "some): every int8 product quantizes its activations per token (accurate, slower)")
            settings = quantize_int8(fp32, int8, activations=activations, calibration=batches)
            if source_file is not None:
                settings["calibration_file"] = source_file
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


def torch_network_of_flax(model_dir: Path, config: Any, tokenizer: Any, labels: list[str], tolerance: float = 1e-4) -> tuple[Any, float]:
    """The torch network of a flax model directory's spec holding its weights (``weights.to_torch``), in eval mode,
    checked to compute the flax network's function: on the exporter's parity batches (1 to 17 texts, 1 token to
    the longest input) the probabilities of the two agree within ``tolerance`` and so do the labels, or nothing is
    exported; returns it and the largest probability difference. The ONNX graph is then traced from it and checked
    against it as any torch model's is."""
    import torch

    from textsift.util import require_extra

    require_extra("flax", ("jax", "flax"), "export a flax model")
    from textsift.backends.flax import weights as wio
    from textsift.backends.flax.runtime import FlaxRuntime
    from textsift.backends.torch.onnx_export import INPUTS, agreement, inputs_of, longest_input, parity_batches

    weights_file = model_dir / "model.safetensors"
    model = config.model.build_from_dir(model_dir, vocab_size=tokenizer.vocab_size, num_labels=len(labels), tokenizer=tokenizer)
    # the file's own tensors, every one of which must have a place (the flax runtime below ignores any it does not read)
    arrays, _ = wio.load_file(weights_file)
    state = wio.to_torch(config.model.type, arrays, list(model.state_dict()), source=str(weights_file))
    model.load_state_dict({k: torch.from_numpy(np.array(v, np.float32)) for k, v in state.items()})
    model.eval()
    flax = FlaxRuntime.load(model_dir, labels=labels, tokenizer=tokenizer)
    ours = getattr(model, "input_format", "padded")
    multilabel = config.task == "multilabel"
    max_length = longest_input(model, int(getattr(config.tokenizer, "max_length", 512)))
    worst = 0.0
    for name, batch in parity_batches(int(tokenizer.vocab_size), max_length):
        expected = flax.logits({"ids": batch["ids"].numpy(), "lengths": batch["lengths"].numpy()})
        with torch.no_grad():
            got = model(dict(zip(INPUTS[ours], inputs_of(batch, ours)))).float().numpy()
        diff, same = agreement(expected, got, multilabel)
        if diff > tolerance or not same:
            raise ModelDirError(f"{weights_file}: the torch network of model.type '{config.model.type}' does not compute the "
                                f"flax network's function with these weights ({name}: probabilities differ by up to {diff:.2e}"
                                f"{'' if same else ', and a label differs'}); nothing is exported.")
        worst = max(worst, diff)
    return model, worst
