"""Evaluation: metrics and reports."""

from textsift.evaluation.metrics import classification_metrics, summary

__all__ = ["classification_metrics", "summary"]
