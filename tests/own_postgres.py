"""A PostgreSQL cluster of a test's own, for tests that stop it (never the shared one on 5432).

``initdb`` and ``pg_ctl`` come from Debian's server package (/usr/lib/postgresql/VERSION/bin).
PostgreSQL refuses to run as root: as root, the cluster belongs to the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.conftest import require_service
from tests.ports import free_port


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found and shutil.which("pg_ctl") is None:
        require_service(
            "PostgreSQL server binaries", "no initdb/pg_ctl (apt-get install postgresql)"
        )
    return Path(found[-1]).parent if found else Path(shutil.which("pg_ctl")).parent


class OwnPostgres:
    """A running cluster: :attr:`url` (trust, user ``postgres``), :meth:`stop`."""

    def __init__(self, directory: Path, port: int, bin_dir: Path, as_user: list[str]):
        self.directory = directory
        self.port = port
        self.url = f"postgres://postgres@127.0.0.1:{port}/postgres"
        self._bin = bin_dir
        self._as_user = as_user

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self._as_user, str(self._bin / "pg_ctl"), "-D", str(self.directory / "data"), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def stop(self) -> None:
        self.pg_ctl("-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        return (self.directory / "data" / "postmaster.pid").exists()


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """initdb a cluster in a temporary folder, start it on a free loopback port, yield it;
    stopped (if still running) and removed afterwards."""
    bin_dir = _binaries()
    directory = Path(tempfile.mkdtemp(prefix="brokerops-own-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(directory, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    cluster = OwnPostgres(directory, port, bin_dir, as_user)
    try:
        subprocess.run(
            [*as_user, str(bin_dir / "initdb"), "-D", str(directory / "data"), "-A", "trust",
             "-U", "postgres", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        cluster.pg_ctl("-o", options, "-l", str(directory / "log"), "-w", "-t", "60", "start")
        yield cluster
    finally:
        if cluster.running():
            with suppress(subprocess.SubprocessError):
                cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
