"""Know your data and your model: ``debug data`` checks (leakage, duplicates, label noise by confident learning, ...),
the HTML/CSV report of them, and model cards.

``debug_data`` and ``DataReport`` are imported on first use, so that writing a model card (``textsift.debug.card``,
at the end of every training run) imports nothing else.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DataReport", "debug_data"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from textsift.debug import data

        return getattr(data, name)
    raise AttributeError(f"module 'textsift.debug' has no attribute {name!r}")
