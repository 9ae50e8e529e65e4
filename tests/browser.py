"""Find Debian's Chromium for the browser tests, installing it (apt-get) when it is missing and we may."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from debian import apt_install

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# as root Chromium needs --no-sandbox; the rest stop it reaching for Google's services on a closed network
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def find_chromium() -> Path | None:
    explicit = os.environ.get("TEXTSIFT_CHROMIUM")
    if explicit:
        return Path(explicit)
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def ensure_chromium() -> Path:
    path = find_chromium()
    if path is None:
        problem = apt_install("chromium")
        path = find_chromium()
        if path is None:
            raise RuntimeError(f"Chromium is needed for the browser tests and could not be installed: {problem or 'not found after install'}. "
                               "Install Debian's chromium package, or set TEXTSIFT_CHROMIUM to a Chromium binary.")
    return path
