"""The operations settings: defaults and bad values (docs/configuration.md)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.environment import child_env

ROOT = Path(__file__).resolve().parents[2]
OPS_VARS = ("LOG_FORMAT", "READY_MAX_RUN_AGE_S", "READY_CHECK_TIMEOUT_S", "RECONCILE_INTERVAL_S")
PROBE = """
import json, logging, django
from django.conf import settings
django.setup()
print(json.dumps({
    "log_format": settings.LOG_FORMAT,
    "formatter": type(logging.getLogger().handlers[0].formatter).__name__,
    "max_age": settings.READY_MAX_RUN_AGE_S,
    "timeout": settings.READY_CHECK_TIMEOUT_S,
    "hijack": settings.CELERY_WORKER_HIJACK_ROOT_LOGGER,
}))
"""


def load(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    env = child_env(**overrides, DJANGO_SETTINGS_MODULE="brokerops.settings")
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def probe(tmp_path: Path, **overrides: str) -> dict:
    done = load(tmp_path, **overrides)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_defaults_are_text_logs_and_three_reconcile_intervals(tmp_path):
    assert probe(tmp_path) == {
        "log_format": "text",
        "formatter": "Formatter",
        "max_age": 900.0,
        "timeout": 2.0,
        "hijack": True,
    }


def test_log_format_json_puts_the_json_formatter_on_the_console_handler(tmp_path):
    found = probe(tmp_path, LOG_FORMAT="JSON", RECONCILE_INTERVAL_S="60")
    assert found["log_format"] == "json"
    assert found["max_age"] == 180.0  # follows the interval
    assert found["formatter"] == "JsonFormatter"
    assert found["hijack"] is False  # Celery keeps the JSON handler


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be 'text' or 'json', not 'xml'"),
        ("READY_MAX_RUN_AGE_S", "-1", "READY_MAX_RUN_AGE_S must be a number from 0.0 to "),
        ("READY_CHECK_TIMEOUT_S", "0", "READY_CHECK_TIMEOUT_S must be a number from 0.001 to "),
    ],
)
def test_a_bad_value_fails_at_start_naming_the_variable(tmp_path, name, value, message):
    done = load(tmp_path, **{name: value})
    assert done.returncode != 0
    assert message in done.stderr
