"""The step cache: a local directory of entries named by fingerprint.

::

    CACHE/
      entries/ab/abcdef.../   result.json (manifest), fingerprint.json, the result's files
      work/abcdef.../         a step being computed (kept after a crash, so a train step resumes)
      locks/abcdef....lock    one lock per entry: two processes compute a step once

An entry appears by renaming its finished work directory into place, so a step that fails or is
killed midway leaves no entry, and a reader never sees half of one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from textsift.util import atomic_write_text, replace_dir
from textsift.workflow.results import MANIFEST


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def entry(self, fingerprint: str) -> Path:
        return self.root / "entries" / fingerprint[:2] / fingerprint

    def has(self, fingerprint: str) -> bool:
        return (self.entry(fingerprint) / MANIFEST).is_file()

    def work_dir(self, fingerprint: str) -> Path:
        return self.root / "work" / fingerprint

    @contextmanager
    def lock(self, fingerprint: str) -> Iterator[None]:
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with FileLock(str(locks / f"{fingerprint}.lock")):
            yield

    def commit(self, fingerprint: str, record: dict) -> Path:
        """Move the finished work directory into place as the entry."""
        work, entry = self.work_dir(fingerprint), self.entry(fingerprint)
        atomic_write_text(work / "fingerprint.json", json.dumps(record, indent=1, sort_keys=True))
        entry.parent.mkdir(parents=True, exist_ok=True)
        replace_dir(work, entry)  # --force replaces an old entry
        return entry
