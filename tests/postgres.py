"""Start a private PostgreSQL server for tests: Debian's package (installed with apt-get if missing)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from debian import apt_install


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres(directory: Path) -> tuple[str, Callable[[], None]]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        problem = apt_install("postgresql")
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError(f"PostgreSQL is needed for the study-storage test and could not be installed: {problem}.")
    # the server refuses to run as root: run it as the 'postgres' user the package creates
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(directory, "postgres")
        os.chmod(directory, 0o700)
        parent = directory.parent
        while parent != parent.parent:  # the postgres user must be able to reach the directory
            os.chmod(parent, os.stat(parent).st_mode | 0o011)
            parent = parent.parent
    data = directory / "data"
    port = _free_port()
    run = lambda *cmd: subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)  # noqa: E731
    proc = run(str(bin_dir / "initdb"), "-D", str(data), "-U", "textsift", "--auth=trust", "-E", "UTF8")
    if proc.returncode != 0:
        raise RuntimeError(f"initdb failed: {proc.stderr[-800:]}")
    proc = run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(directory / "server.log"), "-w", "-t", "60",
               "-o", f"-p {port} -k {directory} -c listen_addresses=127.0.0.1", "start")
    if proc.returncode != 0:
        log = (directory / "server.log").read_text() if (directory / "server.log").exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {proc.stderr[-500:]} {log[-800:]}")
    for _ in range(60):
        if run(str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)).returncode == 0:
            break
        time.sleep(0.5)
    proc = run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "textsift", "studies")
    if proc.returncode != 0:
        raise RuntimeError(f"createdb failed: {proc.stderr[-500:]}")

    def stop() -> None:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")

    return f"postgresql+psycopg2://textsift@127.0.0.1:{port}/studies", stop
