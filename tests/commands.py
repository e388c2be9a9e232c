"""The project's commands as processes of their own (consumers, watchers, one-shot commands),
started against this test's database, as an operator or a container starts them."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.environment import ROOT


def database_url_of_this_test() -> str:
    """The URL of the database this test runs on (the test database, not the configured one,
    with each xdist worker's suffix), for a command started by the test."""
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def start_command(
    command: str, *args: str, env: dict[str, str], cwd: Path = ROOT, merge_stderr: bool = True
) -> subprocess.Popen:
    """``manage.py command args`` in a process of its own, its output piped as text (stderr into
    stdout unless ``merge_stderr`` is False)."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), command, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True,
    )


def stop_command(process: subprocess.Popen, *, timeout_s: float = 15) -> tuple[str, str]:
    """SIGTERM (the way its container is stopped), then its output; killed if it outlives
    ``timeout_s``."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=timeout_s)
    finally:
        reap(process)


def reap(process: subprocess.Popen) -> None:
    """Kill ``process`` if it still runs, and wait for it (a failed test leaves no orphan)."""
    if process.poll() is None:
        process.kill()
    process.wait()


@contextlib.contextmanager
def running_command(command: str, *args: str, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """:func:`start_command` for the ``with`` block; the process is reaped whatever happens."""
    process = start_command(command, *args, env=env)
    try:
        yield process
    finally:
        reap(process)
