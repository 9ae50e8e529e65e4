"""textsift: train, evaluate, tune, compress and serve text classifiers from one config file.

The Python API::

    import textsift

    result = textsift.train({"model": "bag"}, "runs/x", train=rows)   # rows: [{"text": ..., "label": ...}, ...]
    textsift.evaluate("runs/x/model", test_rows)                      # {"test/accuracy": ..., ...}
    textsift.load("runs/x/model").predict(["some text"]).labels

Importing ``textsift`` is cheap: torch and the rest load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textsift.config import Config, load_config
    from textsift.errors import TextsiftError
    from textsift.inference.predictor import Predictions, Predictor
    from textsift.training.run import TrainResult

# public names imported on first use (module __getattr__), so that `import textsift` stays light
_LAZY = {
    "Config": "textsift.config",
    "load_config": "textsift.config",
    "Predictor": "textsift.inference.predictor",
    "Predictions": "textsift.inference.predictor",
    "TextsiftError": "textsift.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'textsift' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def load(path: Any, device: str = "cpu", runtime: str = "auto", num_threads: int | None = None) -> "Predictor":
    """Load a model directory (or a run directory holding ``model/``) for prediction.

    ``textsift.load("runs/x/model").predict(["some text"])`` gives :class:`Predictions`. ``runtime``: ``torch``,
    ``onnx`` (the graph ``textsift export`` wrote), ``onnx-int8`` (its quantized copy), or ``auto`` (the default:
    the int8 graph, else the fp32 one, when exported and onnxruntime is installed; else torch).
    ``num_threads``: CPU threads of the runtime.
    """
    from textsift.inference.predictor import load as _load

    return _load(path, device, runtime, num_threads)


def train(
    config: Any, output: Any = None, *, train: Any = None, validation: Any = None, test: Any = None, **kwargs: Any,
) -> "TrainResult":
    """Train a model, evaluate it on the test data (if any) and, with ``output``, save the run there.

    ``config``: a config file (YAML or Jsonnet), a dict of settings (validated like a file) or a :class:`Config`.
    ``train``, ``validation``, ``test`` (or ``data.train`` ... of a dict config): a file path, or data in memory:
    a list of dicts (``{"text": ..., "label": ...}``, keys as ``data.reader`` names the columns), a pandas
    DataFrame, or a pair ``(texts, labels)``. Data in memory is checked row by row like a file and written as
    JSON Lines into ``output/data/`` (a temporary folder without ``output``), so the saved config names real files.
    ``kwargs``: ``resume``, ``callbacks``, ``checkpoint_every_steps``, ``report`` of
    :func:`textsift.training.run.train`.

    Returns a ``TrainResult``: ``.predictor``, ``.metrics``, ``.model_dir``.
    """
    import tempfile
    from pathlib import Path

    from textsift.training.run import config_and_data
    from textsift.training.run import train as _train

    data = {"train": train, "validation": validation, "test": test}
    if output is not None:
        cfg, in_memory = config_and_data(config, Path(output) / "data", data)
        return _train(cfg, output, in_memory=in_memory, **kwargs)
    with tempfile.TemporaryDirectory(prefix="textsift-data-") as tmp:  # the data files live as long as the training
        cfg, in_memory = config_and_data(config, Path(tmp), data)
        return _train(cfg, None, in_memory=in_memory, **kwargs)


def evaluate(model_dir: Any, data: Any, **kwargs: Any) -> dict[str, float]:
    """Metrics of a saved model on labeled data: ``{"test/accuracy": ..., "test/macro_f1": ..., ...}``.

    ``data``: a file, or data in memory as for :func:`train` (a list of dicts, a DataFrame, ``(texts, labels)``).
    ``kwargs``: ``report`` (a folder for the evaluation report), ``calibrate_on``, ``batch_size``, ``prefix`` ...
    of :func:`textsift.evaluation.evaluate.evaluate`.
    """
    import os
    import tempfile
    from pathlib import Path

    from textsift.evaluation.evaluate import evaluate as _evaluate

    if isinstance(data, (str, os.PathLike)):
        return _evaluate(model_dir, data, **kwargs)
    from textsift.config import load_builtins
    from textsift.data.readers import JsonlReader
    from textsift.errors import ConfigError
    from textsift.modeldir import find_model_dir, load_config_from
    from textsift.training.run import IN_MEMORY_FORMS, errors_name, is_in_memory, jsonl_text

    if not is_in_memory(data):
        raise ConfigError(f"data: expected {IN_MEMORY_FORMS}; got {type(data).__name__}.")
    load_builtins()
    columns = kwargs.pop("reader", None) or load_config_from(find_model_dir(model_dir)).data.reader
    reader = JsonlReader(text_column=columns.text_column, text_pair_column=columns.text_pair_column,
                         label_column=columns.label_column)
    with tempfile.TemporaryDirectory(prefix="textsift-data-") as tmp:
        path = Path(tmp) / "data.jsonl"
        path.write_text(jsonl_text(data, "data", reader), encoding="utf-8")
        with errors_name(path, "data (in memory)"):
            return _evaluate(model_dir, path, reader=reader, **kwargs)


__all__ = ["Config", "Predictions", "Predictor", "TextsiftError", "evaluate", "load", "load_config", "train"]
