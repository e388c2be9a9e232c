"""A redis-server of a test's own, for tests that stop or kill it (never the shared one)."""

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.conftest import require_service
from tests.ports import free_port


def start_own_redis(directory: Path) -> tuple[str, subprocess.Popen]:
    """Start a redis-server on a free port (nothing kept on disk); return its URL and process
    once it answers a PING. The caller stops it (``proc.kill(); proc.wait()``)."""
    if shutil.which("redis-server") is None:
        require_service("redis-server", "not installed (apt-get install redis-server)")
    port = free_port()
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
