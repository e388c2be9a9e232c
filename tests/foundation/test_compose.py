"""docker-compose.yml describes the full stack (no Docker engine here: validated by parsing)."""

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_web_worker_beat_stream_watcher_redis_postgres():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert set(services) == {"web", "worker", "beat", "stream", "watcher", "redis", "postgres"}
    assert services["stream"]["command"] == "python manage.py stream_trade_updates"
    assert services["stream"]["stop_signal"] == "SIGTERM"
    assert services["watcher"]["command"] == "python manage.py watch_signals"
    assert services["watcher"]["stop_signal"] == "SIGTERM"
    assert "celery -A brokerops worker" in services["worker"]["command"]
    assert "reconciliation" in services["worker"]["command"]
    assert "celery -A brokerops beat" in services["beat"]["command"]
    for name in ("web", "worker", "beat", "stream", "watcher"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"].startswith("redis://")
        # Secrets are substituted from the environment, never written in the file.
        assert env["DJANGO_SECRET_KEY"].startswith("${")
        assert env["ALPACA_SECRET_KEY"].startswith("${")


def test_compose_file_is_valid_for_docker_compose():
    binary = shutil.which("docker-compose")
    if binary is None:
        require_service("docker-compose", "Debian's docker-compose is not installed")
    done = subprocess.run(
        [binary, "config", "--quiet"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SECRET_KEY": "compose-config-check"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
