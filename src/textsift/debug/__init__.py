"""Know your data and your model: ``debug data`` checks (leakage, duplicates, label noise by confident learning, ...),
the HTML/CSV report of them, and model cards."""

from textsift.debug.data import DataReport, debug_data

__all__ = ["DataReport", "debug_data"]
