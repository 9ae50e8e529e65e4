"""Small helpers shared across the package: atomic writes, seeding, fingerprints."""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write a file through a temporary file in the same folder, then rename it into place.

    A crash leaves either the old file or the new one, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def file_fingerprint(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (first 16 hex digits)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def replace_dir(new: Path, dest: Path) -> None:
    """Move the finished directory ``new`` to ``dest``, replacing what is there: never half of either."""
    import shutil

    new, dest = Path(new), Path(dest)
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(new, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, dest)


def load_record(cls: type[T], file: Path, fix: str) -> T | None:
    """An optional JSON file of a model directory as the dataclass ``cls`` (None when absent); a damaged
    file is a :class:`ModelDirError` that says ``fix``."""
    import json

    from textsift.errors import ModelDirError

    if not file.is_file():
        return None
    try:
        return cls(**json.loads(file.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise ModelDirError(f"{file} is damaged ({exc}); {fix}.") from None


def check_output_dir(path: Path, option: str, *, overwrite: bool = False, ours: tuple[str, ...] = ()) -> None:
    """Refuse to write into a folder this command did not create.

    An existing, non-empty folder is refused unless ``overwrite`` (the caller then replaces it whole), or unless
    it holds one of ``ours``: files by which the command recognises its own earlier output (a study it continues).
    """
    from textsift.errors import ConfigError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} '{path}' is a file; give a folder to write into.")
    if not path.is_dir() or overwrite or not any(path.iterdir()):
        return
    if ours and any((path / name).exists() for name in ours):
        return
    fix = "pass --overwrite to replace that folder whole, or choose a new one" if not ours else "choose a new or empty folder"
    raise ConfigError(f"{option} '{path}' already holds files; {fix}.")


def require_extra(extra: str, packages: tuple[str, ...], what: str) -> None:
    """Raise a one-line ConfigError when a package of the optional extra ``extra`` that ``what`` needs is missing."""
    import importlib.util

    from textsift.errors import ConfigError

    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        raise ConfigError(f"{what} needs {', '.join(missing)}, not installed: pip install -e '.[{extra}]' in a clone of "
                          f"textsift (or pip install 'textsift[{extra}]').")
