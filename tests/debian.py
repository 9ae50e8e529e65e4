"""Install a Debian package for a test that needs a real program (Chromium, PostgreSQL)."""

from __future__ import annotations

import os
import shutil
import subprocess


def apt_install(package: str) -> str:
    """``apt-get install PACKAGE`` as root; returns what went wrong, or '' on success."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return f"installing needs root (run: sudo apt-get install -y {package})"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            return f"{' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}"
    return ""
