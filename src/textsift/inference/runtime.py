"""Runtimes: what turns encoded batches into logits. A runtime knows nothing of training.

The Predictor (tokenizer, calibration, decision) hands a runtime collated numpy batches (see
:mod:`textsift.batching`) and gets logits back. Runtimes are named here, in one table, by import path, so
choosing one imports only its own backend: ``torch`` (the network and its safetensors weights) and ``onnx`` /
``onnx-int8`` (the graph ``textsift export`` wrote, run by ONNX Runtime; imports no torch), and ``flax`` (the NNX
network of a model trained with ``backend: flax``; imports no torch). A new backend adds a :class:`Runtime`
subclass and a row to :data:`RUNTIMES`.

``auto`` takes the first runtime of :data:`RUNTIMES` whose files the model directory holds, whose package is
installed and, for torch and flax, whose backend wrote ``model.safetensors`` (its header's "format"): the int8
graph, then the fp32 graph, then torch or flax.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textsift.errors import ConfigError, ModelDirError, unknown_name
from textsift.registry import import_path, is_import_path


class Runtime(ABC):
    """Logits for collated batches. ``input_format`` says how batches are collated: "bag" or "padded"."""

    #: the name it was chosen by (``--runtime``; set by :func:`load_runtime`)
    name: str = ""
    input_format: str = "padded"

    @classmethod
    @abstractmethod
    def load(cls, model_dir: Path, *, labels: list[str], tokenizer: Any, device: str = "cpu",
             num_threads: int | None = None, **options: Any) -> "Runtime":
        """The runtime for the model directory ``model_dir`` (its files checked, each problem naming the file)."""

    @abstractmethod
    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Float32 logits ``[batch, labels]`` for one collated batch."""

    def describe(self) -> dict[str, Any]:
        """What ``inspect`` shows of it: its files, parameters, quantization."""
        return {"runtime": self.name}


@dataclass(frozen=True)
class RuntimeEntry:
    """A runtime by name: the class (import path), its load options, the files and package it needs."""

    name: str
    target: str
    files: tuple[str, ...] = ()
    package: str | None = None  # an importable module the runtime needs
    extra: str | None = None  # the textsift extra that installs it
    options: dict[str, Any] = field(default_factory=dict)
    weights_format: str | None = None  # the "format" of model.safetensors it runs ("pt": torch, "flax")

    def missing_package(self) -> str | None:
        if self.package is None or importlib.util.find_spec(self.package) is not None:
            return None
        return self.package

    def missing_files(self, model_dir: Path) -> list[str]:
        return [f for f in self.files if not (model_dir / f).is_file()]

    def runs_weights_of(self, model_dir: Path) -> bool:
        """Whether its backend wrote ``model_dir``'s weights (runtimes that name no format run any)."""
        return self.weights_format is None or weights_format(model_dir) in (self.weights_format, None)


def weights_format(model_dir: Path) -> str | None:
    """The "format" of ``model.safetensors``'s header metadata ("pt" from torch, "flax"), read without a framework;
    None when there is no readable file (its runtime's load then names the problem)."""
    import json

    try:
        with (model_dir / "model.safetensors").open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size)) if 0 < size < 100_000_000 else {}
    except (OSError, ValueError):
        return None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta.get("format") if isinstance(meta, dict) else None


#: every runtime, in the order ``auto`` prefers them
RUNTIMES: dict[str, RuntimeEntry] = {
    entry.name: entry for entry in (
        RuntimeEntry("onnx-int8", "textsift.backends.onnx.runtime:OnnxRuntime", ("model.int8.onnx",), "onnxruntime", "onnx",
                     {"variant": "int8"}),
        RuntimeEntry("onnx", "textsift.backends.onnx.runtime:OnnxRuntime", ("model.onnx",), "onnxruntime", "onnx",
                     {"variant": "fp32"}),
        RuntimeEntry("torch", "textsift.backends.torch.runtime:TorchRuntime", ("model.safetensors",), "torch",
                     weights_format="pt"),
        RuntimeEntry("flax", "textsift.backends.flax.runtime:FlaxRuntime", ("model.safetensors",), "flax", "flax",
                     weights_format="flax"),
    )
}
RUNTIME_CHOICES = ("auto", *RUNTIMES)


def choose_runtime(model_dir: Path, name: str = "auto") -> RuntimeEntry:
    """The runtime ``name`` means for ``model_dir``; ``auto``: the first in :data:`RUNTIMES` it can run on."""
    if name == "auto":
        for entry in RUNTIMES.values():
            if not entry.missing_files(model_dir) and entry.missing_package() is None and entry.runs_weights_of(model_dir):
                return entry
        flax = RUNTIMES["flax"]
        return flax if weights_format(model_dir) == flax.weights_format else RUNTIMES["torch"]  # its load names the problem
    if name in RUNTIMES:
        return RUNTIMES[name]
    if is_import_path(name):  # a runtime of the user's own: package.module:Class
        return RuntimeEntry(name, name)
    raise unknown_name("runtime", name, RUNTIME_CHOICES, fix="Or give your own Runtime subclass as 'package.module:Class'.")


def load_runtime(model_dir: Path, name: str, *, labels: list[str], tokenizer: Any, device: str = "cpu",
                 num_threads: int | None = None) -> Runtime:
    """Load the runtime ``name`` (or ``auto``) for ``model_dir``; a missing package or file is one clear error.
    ``auto`` on a GPU ``device`` is torch (the ONNX graphs run on the CPU)."""
    entry = choose_runtime(model_dir, name)
    if name == "auto" and device not in ("cpu", "auto") and entry.name != "flax":
        entry = RUNTIMES["torch"]
    package = entry.missing_package()
    if package is not None:
        extra = f"pip install 'textsift[{entry.extra}]'" if entry.extra else f"pip install {package}"
        raise ConfigError(f"runtime '{entry.name}' needs the package {package}, which is not installed: {extra} "
                          "(or choose another runtime: --runtime torch).")
    missing = entry.missing_files(model_dir)
    if missing and entry.name.startswith("onnx"):
        quantize = " --quantize int8" if entry.name == "onnx-int8" else ""
        raise ModelDirError(f"{model_dir}: no {missing[0]} for runtime '{entry.name}'. Export it first: "
                            f"textsift export {model_dir} --format onnx{quantize} (or choose --runtime torch).")
    if not entry.runs_weights_of(model_dir):
        raise ModelDirError(f"{model_dir}/model.safetensors holds {weights_format(model_dir)} weights, which runtime "
                            f"'{entry.name}' cannot run: choose --runtime {_runtime_for(model_dir)} (or auto).")
    cls = import_path(entry.target)
    if not (isinstance(cls, type) and issubclass(cls, Runtime)):
        raise ConfigError(f"runtime '{entry.name}': {entry.target} is not a textsift Runtime subclass.")
    runtime = cls.load(model_dir, labels=labels, tokenizer=tokenizer, device=device, num_threads=num_threads, **entry.options)
    runtime.name = entry.name
    return runtime


def _runtime_for(model_dir: Path) -> str:
    found = weights_format(model_dir)
    return next((e.name for e in RUNTIMES.values() if e.weights_format == found), "auto")


__all__ = ["RUNTIMES", "RUNTIME_CHOICES", "Runtime", "RuntimeEntry", "choose_runtime", "load_runtime"]
