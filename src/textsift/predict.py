"""The Predictor and prediction output; they live in :mod:`textsift.inference` (kept here for existing imports)."""

from textsift.inference.output import RECORD_KEYS, score_columns, write_predictions
from textsift.inference.predictor import EMPTY_POLICIES, Predictions, Predictor, is_empty, load

__all__ = ["EMPTY_POLICIES", "RECORD_KEYS", "Predictions", "Predictor", "is_empty", "load", "score_columns", "write_predictions"]
