"""Inference: the Predictor (tokenizer + runtime + calibration + decision) and prediction output.

Imports nothing from training, and no torch unless the torch runtime is chosen::

    from textsift.inference import load
    load("runs/x/model", runtime="onnx").predict(["some text"]).labels
"""

from textsift.inference.output import RECORD_KEYS, score_columns, write_predictions
from textsift.inference.predictor import EMPTY_POLICIES, Predictions, Predictor, is_empty, load
from textsift.inference.runtime import RUNTIME_CHOICES, RUNTIMES, Runtime, choose_runtime, load_runtime

__all__ = [
    "EMPTY_POLICIES", "RECORD_KEYS", "RUNTIMES", "RUNTIME_CHOICES", "Predictions", "Predictor", "Runtime", "choose_runtime",
    "is_empty", "load", "load_runtime", "score_columns", "write_predictions",
]
