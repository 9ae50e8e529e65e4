"""The onnx runtime: the graph ``textsift export`` wrote, run by ONNX Runtime on the CPU. Imports no torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from textsift.backends.onnx import GRAPHS
from textsift.errors import ConfigError, ModelDirError
from textsift.inference.runtime import Runtime

#: the graph inputs of each input format (as collated by textsift.batching)
INPUT_FORMATS = {("ids", "offsets"): "bag", ("ids", "lengths"): "padded"}


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class OnnxRuntime(Runtime):
    """One ONNX Runtime session over ``model.onnx`` (fp32) or ``model.int8.onnx`` (int8)."""

    name = "onnx"

    def __init__(self, session: Any, file: Path) -> None:
        self.session = session
        self.file = file
        names = tuple(i.name for i in session.get_inputs())
        if names not in INPUT_FORMATS or [o.name for o in session.get_outputs()] != ["logits"]:
            raise ModelDirError(f"{file}: not a textsift graph (inputs {', '.join(names) or 'none'}; expected ids and lengths "
                                "or ids and offsets, and one output, logits). Export it again: textsift export "
                                f"{file.parent} --format onnx.")
        self.inputs = names
        self.input_format = INPUT_FORMATS[names]

    @classmethod
    def load(cls, model_dir: Path, *, labels: list[str], tokenizer: Any, device: str = "cpu",
             num_threads: int | None = None, variant: str = "fp32", **options: Any) -> "OnnxRuntime":
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("runtime 'onnx' needs onnxruntime, which is not installed: pip install 'textsift[onnx]' "
                              "(or choose --runtime torch).") from None
        if device not in ("cpu", "auto"):
            raise ConfigError(f"runtime 'onnx' runs on the CPU; device '{device}' is not supported. Use device 'cpu' or runtime 'torch'.")
        file = model_dir / GRAPHS[variant]
        if not file.is_file():
            raise ModelDirError(f"{model_dir}: no {file.name}. Export it first: textsift export {model_dir} --format onnx"
                                f"{' --quantize int8' if variant == 'int8' else ''} (or choose --runtime torch).")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only: a warning of ONNX Runtime is not the user's business
        if num_threads is not None:
            opts.intra_op_num_threads = num_threads
            opts.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(file), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises its own error types for a damaged file
            raise ModelDirError(f"{file} is damaged: ONNX Runtime cannot load it ({_first_line(exc)}). "
                                f"Export it again: textsift export {model_dir} --format onnx"
                                f"{' --quantize int8' if variant == 'int8' else ''}.") from None
        runtime = cls(session, file)
        shape = session.get_outputs()[0].shape
        if len(shape) == 2 and isinstance(shape[1], int) and shape[1] != len(labels):
            raise ModelDirError(f"{model_dir / 'labels.json'} lists {len(labels)} labels, but {file.name} gives {shape[1]} logits: "
                                f"the files come from different models. Export again: textsift export {model_dir} --format onnx.")
        return runtime

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {name: np.ascontiguousarray(batch[name], dtype=np.int64) for name in self.inputs}
        return np.asarray(self.session.run(["logits"], feeds)[0], dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.name, "file": self.file.name, "bytes": self.file.stat().st_size}
