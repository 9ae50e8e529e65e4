"""The step cache: a local directory of entries named by fingerprint.

::

    CACHE/
      entries/ab/abcdef.../   result.json (manifest), fingerprint.json, the result's files
      work/abcdef.../         a step being computed (kept after a crash, so a train step resumes)
      locks/abcdef....lock    one lock per entry: two processes compute a step once

An entry appears by renaming its finished work directory into place, so a step that fails or is
killed midway leaves no entry, and a reader never sees half of one. Its text files name the entry,
not the work directory they were written in (see :meth:`Cache.commit`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from textsift.util import atomic_write_bytes, atomic_write_text, replace_dir
from textsift.workflow.results import MANIFEST

# files whose paths are rewritten from the work directory to the entry when a step's result is committed
TEXT_SUFFIXES = frozenset({".json", ".yaml", ".yml", ".jsonl", ".log", ".txt", ".csv", ".html", ".md"})


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

    def relocations(self, fingerprint: str) -> dict[str, str]:
        """The work directory's path, as given and resolved, and the entry's path it becomes."""
        work, entry = self.work_dir(fingerprint), self.entry(fingerprint)
        pairs = {str(work): str(entry), str(work.resolve()): str(entry.resolve())}
        return {old: new for old, new in pairs.items() if old != new}

    def commit(self, fingerprint: str, record: dict) -> Path:
        """Move the finished work directory into place as the entry.

        Files the step wrote name paths in its work directory (a report's ``model_dir``, a model's data
        files); in the entry's text files those paths are rewritten to name the entry (the 24-digit
        fingerprint in the work path makes it unique), one file at a time, atomically.
        """
        work, entry = self.work_dir(fingerprint), self.entry(fingerprint)
        rewrite_paths(work, self.relocations(fingerprint))
        atomic_write_text(work / "fingerprint.json", json.dumps(record, indent=1, sort_keys=True))
        entry.parent.mkdir(parents=True, exist_ok=True)
        replace_dir(work, entry)  # --force replaces an old entry
        return entry


def rewrite_paths(directory: Path, relocations: dict[str, str]) -> list[Path]:
    """Replace each old path by its new one in the text files under ``directory`` (also as JSON escapes
    them); returns the files changed."""
    pairs: dict[bytes, bytes] = {}
    for old, new in relocations.items():
        pairs[old.encode()] = new.encode()
        pairs[json.dumps(old)[1:-1].encode()] = json.dumps(new)[1:-1].encode()  # non-ASCII paths in JSON
    if not pairs:
        return []
    pattern = re.compile(b"|".join(re.escape(old) for old in sorted(pairs, key=len, reverse=True)))
    changed = []
    for file in sorted(directory.rglob("*")):
        if file.suffix.lower() not in TEXT_SUFFIXES or file.is_symlink() or not file.is_file():
            continue
        data = file.read_bytes()
        new_data = pattern.sub(lambda m: pairs[m.group(0)], data)
        if new_data != data:
            atomic_write_bytes(file, new_data)
            changed.append(file)
    return changed


def content_digest(path: Path) -> str | None:
    """sha256 over the relative paths and bytes of the files at ``path`` (a file or a folder); None when nothing is there."""
    path = Path(path)
    if path.is_file():
        files = [(path, "")]
    elif path.is_dir():
        files = [(p, p.relative_to(path).as_posix()) for p in sorted(path.rglob("*")) if p.is_file()]
    else:
        return None
    h = hashlib.sha256()
    for file, name in files:
        h.update(name.encode() + b"\0" + str(file.stat().st_size).encode() + b"\0")
        with open(file, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()
