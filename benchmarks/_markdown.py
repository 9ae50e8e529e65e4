"""Put a benchmark's section into BENCHMARKS.md between its markers (replacing the old one)."""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(name: str, section: str) -> None:
    """``section`` starts with ``<!-- NAME:start -->`` and ends with ``<!-- NAME:end -->``."""
    text = BENCHMARKS.read_text()
    marker = re.compile(rf"<!-- {re.escape(name)}:start -->.*<!-- {re.escape(name)}:end -->", flags=re.S)
    text = marker.sub(lambda _: section, text) if marker.search(text) else text.rstrip() + "\n\n" + section + "\n"
    BENCHMARKS.write_text(text)
