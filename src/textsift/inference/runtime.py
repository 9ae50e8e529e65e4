"""Runtimes: what turns encoded batches into logits. A runtime knows nothing of training.

The Predictor (tokenizer, calibration, decision) hands a runtime collated numpy batches (see
:mod:`textsift.batching`) and gets logits back. Runtimes are named here, in one table, by import path, so
choosing one imports only its own backend: ``torch`` (the network and its safetensors weights) and ``onnx`` /
``onnx-int8`` (the graph ``textsift export`` wrote, run by ONNX Runtime; imports no torch). A new backend
(flax) adds a :class:`Runtime` subclass and a row to :data:`RUNTIMES`.

``auto`` takes the first runtime of :data:`RUNTIMES` whose files the model directory holds and whose package
is installed: the int8 graph, then the fp32 graph, then torch.
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

    def missing_package(self) -> str | None:
        if self.package is None or importlib.util.find_spec(self.package) is not None:
            return None
        return self.package

    def missing_files(self, model_dir: Path) -> list[str]:
        return [f for f in self.files if not (model_dir / f).is_file()]


#: every runtime, in the order ``auto`` prefers them
RUNTIMES: dict[str, RuntimeEntry] = {
    entry.name: entry for entry in (
        RuntimeEntry("onnx-int8", "textsift.backends.onnx.runtime:OnnxRuntime", ("model.int8.onnx",), "onnxruntime", "onnx",
                     {"variant": "int8"}),
        RuntimeEntry("onnx", "textsift.backends.onnx.runtime:OnnxRuntime", ("model.onnx",), "onnxruntime", "onnx",
                     {"variant": "fp32"}),
        RuntimeEntry("torch", "textsift.backends.torch.runtime:TorchRuntime", ("model.safetensors",), "torch"),
    )
}
RUNTIME_CHOICES = ("auto", *RUNTIMES)


def choose_runtime(model_dir: Path, name: str = "auto") -> RuntimeEntry:
    """The runtime ``name`` means for ``model_dir``; ``auto``: the first in :data:`RUNTIMES` it can run on."""
    if name == "auto":
        for entry in RUNTIMES.values():
            if not entry.missing_files(model_dir) and entry.missing_package() is None:
                return entry
        return RUNTIMES["torch"]  # its load names the missing file
    if name in RUNTIMES:
        return RUNTIMES[name]
    if is_import_path(name):  # a runtime of the user's own: package.module:Class
        return RuntimeEntry(name, name)
    raise unknown_name("runtime", name, RUNTIME_CHOICES, fix="Or give your own Runtime subclass as 'package.module:Class'.")


def load_runtime(model_dir: Path, name: str, *, labels: list[str], tokenizer: Any, device: str = "cpu",
                 num_threads: int | None = None) -> Runtime:
    """Load the runtime ``name`` (or ``auto``) for ``model_dir``; a missing package or file is one clear error.
    ``auto`` on a GPU ``device`` is torch (the ONNX graphs run on the CPU)."""
    entry = RUNTIMES["torch"] if name == "auto" and device not in ("cpu", "auto") else choose_runtime(model_dir, name)
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
    cls = import_path(entry.target)
    if not (isinstance(cls, type) and issubclass(cls, Runtime)):
        raise ConfigError(f"runtime '{entry.name}': {entry.target} is not a textsift Runtime subclass.")
    runtime = cls.load(model_dir, labels=labels, tokenizer=tokenizer, device=device, num_threads=num_threads, **entry.options)
    runtime.name = entry.name
    return runtime


__all__ = ["RUNTIMES", "RUNTIME_CHOICES", "Runtime", "RuntimeEntry", "choose_runtime", "load_runtime"]
