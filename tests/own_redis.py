"""A redis-server of a test's own, for tests that stop or kill it (never the shared one)."""

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.conftest import require_service


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_own_redis(directory: Path) -> tuple[str, subprocess.Popen]:
    """Start a redis-server on a free port (nothing kept on disk); return its URL and process
    once it answers a PING. The caller stops it (``proc.kill(); proc.wait()``)."""
    if shutil.which("redis-server") is None:
        require_service("redis-server", "not installed (apt-get install redis-server)")
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return url, proc
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.05)
