"""Start a private PostgreSQL server for tests: Debian's package (installed with apt-get if missing)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from debian import apt_install


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def start_postgres(directory: Path) -> tuple[str, Callable[[], None]]:
    """Start a server that listens on a Unix socket in ``directory`` only: no TCP port to find, or to lose to
    another process between finding and binding it. Waits for it as long as a slow machine takes."""
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
    socket_dir = str(directory)  # the socket is socket_dir/.s.PGSQL.5432: the port only names it
    run = lambda *cmd: subprocess.run([*as_user, *cmd], capture_output=True, text=True)  # noqa: E731
    proc = run(str(bin_dir / "initdb"), "-D", str(data), "-U", "textsift", "--auth=trust", "-E", "UTF8")
    if proc.returncode != 0:
        raise RuntimeError(f"initdb failed: {proc.stderr[-800:]}")
    log = directory / "server.log"
    with log.open("w") as out:
        if as_user:
            shutil.chown(log, "postgres")
        server = subprocess.Popen([*as_user, str(bin_dir / "postgres"), "-D", str(data), "-p", "5432", "-k", socket_dir,
                                   "-c", "listen_addresses="], stdout=out, stderr=subprocess.STDOUT)
    while run(str(bin_dir / "pg_isready"), "-h", socket_dir, "-p", "5432").returncode != 0:
        if server.poll() is not None:
            raise RuntimeError(f"the PostgreSQL server exited ({server.returncode}): {log.read_text()[-800:]}")
        time.sleep(0.2)
    proc = run(str(bin_dir / "createdb"), "-h", socket_dir, "-p", "5432", "-U", "textsift", "studies")
    if proc.returncode != 0:
        raise RuntimeError(f"createdb failed: {proc.stderr[-500:]}")

    def stop() -> None:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        server.wait()

    return f"postgresql+psycopg2://textsift@/studies?host={socket_dir}&port=5432", stop
