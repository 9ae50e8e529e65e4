"""Temperature scaling (Guo et al., 2017): one scalar T > 0 that divides the logits.

Fitted on held-out (validation) data by minimising the negative log-likelihood. Dividing by a positive
number keeps the order of the logits, so predicted labels never change; only the confidence does.
The fitted value lives in ``calibration.json`` in the model directory and predict uses it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from textsift.errors import ModelDirError
from textsift.evaluation.metrics import expected_calibration_error, sigmoid, softmax
from textsift.util import atomic_write_text, load_record

logger = logging.getLogger(__name__)

FILE = "calibration.json"
MIN_T, MAX_T = 1e-2, 1e2


def nll(logits: np.ndarray, y_true: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood: softmax for label indices, per-label sigmoid for a 0/1 matrix."""
    from scipy.special import logsumexp  # scipy only where a temperature is fitted: predicting needs none of it

    z = np.asarray(logits, np.float64) / temperature
    y = np.asarray(y_true)
    if y.ndim == 2:  # binary cross-entropy, mean over examples and labels
        return float(np.mean(np.logaddexp(0.0, z) - y * z))
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(y)), y]))


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and what it did on the data it was fitted on."""

    temperature: float
    fitted_on: str
    examples: int
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    method: str = "temperature"

    def save(self, model_dir: Path) -> None:
        atomic_write_text(Path(model_dir) / FILE, json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, model_dir: Path) -> "Calibration | None":
        file = Path(model_dir) / FILE
        cal = load_record(cls, file, "delete it, or fit again with `textsift evaluate --calibrate`")
        if cal is None:
            return None
        if not (cal.temperature > 0 and np.isfinite(cal.temperature)):
            raise ModelDirError(f"{file}: temperature must be a positive number, got {cal.temperature}.")
        return cal


def _probs(logits: np.ndarray, y_true: np.ndarray, t: float) -> np.ndarray:
    return sigmoid(logits, t) if np.asarray(y_true).ndim == 2 else softmax(logits, t)


def fit_temperature(logits: np.ndarray, y_true: np.ndarray, fitted_on: str = "validation data") -> Calibration:
    """The temperature in [0.01, 100] that minimises the NLL of ``softmax(logits / T)`` on ``y_true``."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, np.float64)
    y_true = np.asarray(y_true)
    if y_true.ndim == 1:
        y_true = y_true.astype(np.int64)
    if len(y_true) == 0:
        raise ValueError("Temperature scaling needs at least one labeled example.")
    result = minimize_scalar(
        lambda log_t: nll(logits, y_true, float(np.exp(log_t))),
        bounds=(np.log(MIN_T), np.log(MAX_T)), method="bounded", options={"xatol": 1e-5},
    )
    t = float(np.exp(result.x))
    before, after = nll(logits, y_true), nll(logits, y_true, t)
    if after > before:  # the bounded search never does worse than T = 1 on the data it saw
        t, after = 1.0, before
    cal = Calibration(
        temperature=t, fitted_on=fitted_on, examples=int(len(y_true)), nll_before=before, nll_after=after,
        ece_before=expected_calibration_error(_probs(logits, y_true, 1.0), y_true),
        ece_after=expected_calibration_error(_probs(logits, y_true, t), y_true),
    )
    logger.info(
        "Temperature scaling on %s (%d examples): T=%.3f, NLL %.4f -> %.4f, ECE %.4f -> %.4f",
        fitted_on, cal.examples, t, before, after, cal.ece_before, cal.ece_after,
    )
    return cal
