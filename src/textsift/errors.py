"""Every exception textsift raises on purpose, in one place.

A :class:`TextsiftError` is a problem the user can fix: its message names the setting, file or row,
what was expected, what was found, and what to do. The CLI prints it as one line, with no traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TextsiftError(Exception):
    """Base class of the errors a user can act on."""


class ConfigError(TextsiftError):
    """A config file, a command-line override or a component setting is wrong."""


class RegistryError(ConfigError):
    """A component name that is neither registered nor an importable ``module:attr`` path."""


class DataError(TextsiftError):
    """A data file cannot be read, or a row in it is not a valid example."""


class ModelDirError(TextsiftError):
    """A model directory is missing a file, or a file in it is damaged."""


class NotFittedError(TextsiftError, ValueError):
    """A component was used before ``fit`` gave it its learned state."""


class CheckpointError(TextsiftError):
    """A run directory cannot be resumed (no checkpoint, or a different config)."""


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest option, or an empty string."""
    options = list(options)
    same = [o for o in options if o.casefold() == name.casefold()]  # 'ID' for 'id': case alone is no close match to difflib
    matches = same or difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if not matches:
        return ""
    match = matches[0]
    return f" Did you mean '{match}'?" if match.isprintable() and len(match) <= 80 else f" Did you mean {match[:80]!r}?"


def unknown_name(kind: str, name: str, options: Iterable[str], fix: str = "") -> RegistryError:
    options = sorted(options)
    return RegistryError(
        f"Unknown {kind} '{name}'.{did_you_mean(name, options)} Registered {kind}s: "
        f"{', '.join(options) or '(none)'}." + (f" {fix}" if fix else "")
    )
