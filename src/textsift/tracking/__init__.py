"""Experiment tracking behind one small interface: JSON Lines (always), MLflow, TensorBoard."""

from textsift.tracking.base import JsonlTracker, MultiTracker, Tracker, TrackingCallback, flatten

__all__ = ["JsonlTracker", "MultiTracker", "Tracker", "TrackingCallback", "flatten"]
