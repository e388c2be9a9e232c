"""docker-compose.yml's web health check calls ``/readyz`` with the image's Python (no curl)."""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.test.utils import override_settings
from django.utils import timezone

from tests import factories

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_URL = "http://127.0.0.1:8000/readyz"


def web_healthcheck() -> list[str]:
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return spec["services"]["web"]["healthcheck"]["test"]


def test_the_web_service_checks_readyz_with_python():
    test = web_healthcheck()
    assert test[:3] == ["CMD", "python", "-c"]
    assert COMPOSE_URL in test[3]


@pytest.mark.django_db(transaction=True)
def test_the_health_check_command_passes_on_200_and_fails_on_503(live_server):
    code = web_healthcheck()[3].replace(COMPOSE_URL, f"{live_server.url}/readyz")

    def check() -> int:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, timeout=30
        ).returncode

    old = timezone.now() - timedelta(hours=1)
    factories.reconciliation_run(started_at=old, finished_at=old)
    with override_settings(REDIS_URL=None, READY_MAX_RUN_AGE_S=7200):
        assert check() == 0
    with override_settings(REDIS_URL=None, READY_MAX_RUN_AGE_S=60):
        assert check() != 0
