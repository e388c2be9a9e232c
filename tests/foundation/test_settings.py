"""Settings come from the environment with safe embedded defaults (docs/design.md section 10)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.environment import child_env

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, django
from django.conf import settings
from brokerops.celery import app
django.setup()
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "redis_url": settings.REDIS_URL,
    "broker": app.conf.broker_url,
    "eager": app.conf.task_always_eager,
    "debug": settings.DEBUG,
    "secret_is_dev": settings.SECRET_KEY == settings.DEV_SECRET_KEY,
    "alpaca_key": settings.ALPACA_API_KEY,
    "alpaca_paper": settings.ALPACA_PAPER,
    "alpaca_base_url": settings.ALPACA_BASE_URL,
    "rate": settings.ALPACA_RATE_LIMIT_PER_MIN,
    "timeout": settings.ALPACA_TIMEOUT_S,
    "store": settings.SIGNAL_STORE,
    "collection": settings.FIRESTORE_SIGNALS_COLLECTION,
    "prefix": settings.CLIENT_ORDER_ID_PREFIX,
}))
"""


def load_settings(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter with only ``overrides`` of our variables set.

    Runs in ``tmp_path`` with the project on the path, so a developer's own ``.env`` is not read.
    """
    env = child_env(**overrides, DJANGO_SETTINGS_MODULE="brokerops.settings")
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def probe(tmp_path: Path, **overrides: str) -> dict:
    done = load_settings(tmp_path, **overrides)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_no_environment_gives_the_embedded_defaults(tmp_path):
    got = probe(tmp_path)
    assert got["engine"] == "django.db.backends.sqlite3"
    assert got["db_name"].endswith("brokerops.sqlite3")
    assert got["redis_url"] is None
    assert got["broker"] == "memory://"
    assert got["eager"] is True
    assert got["debug"] is False
    assert got["secret_is_dev"] is True
    assert got["alpaca_key"] is None
    assert got["alpaca_paper"] is True
    assert got["alpaca_base_url"] is None
    assert got["rate"] == 200
    assert got["timeout"] == 10.0
    assert got["store"] == "local"
    assert got["collection"] == "signals"
    assert got["prefix"] == "bo"


def test_production_variables_select_postgres_redis_and_alpaca(tmp_path):
    got = probe(
        tmp_path,
        DATABASE_URL="postgres://app:pw@db.internal:5432/brokerops",
        REDIS_URL="redis://cache.internal:6379/2",
        ALPACA_API_KEY="AK123",
        ALPACA_SECRET_KEY="s3cr3t",
        ALPACA_PAPER="false",
        ALPACA_BASE_URL="http://127.0.0.1:9999",
        ALPACA_RATE_LIMIT_PER_MIN="150",
        ALPACA_TIMEOUT_S="2.5",
        SIGNAL_STORE="firestore",
        FIRESTORE_SIGNALS_COLLECTION="intents",
        CLIENT_ORDER_ID_PREFIX="desk7",
        DJANGO_DEBUG="true",
    )
    assert got["engine"] == "django.db.backends.postgresql"
    assert got["db_name"] == "brokerops"
    assert got["redis_url"] == "redis://cache.internal:6379/2"
    assert got["broker"] == "redis://cache.internal:6379/2"
    assert got["eager"] is False
    assert got["debug"] is True
    assert got["alpaca_key"] == "AK123"
    assert got["alpaca_paper"] is False
    assert got["alpaca_base_url"] == "http://127.0.0.1:9999"
    assert got["rate"] == 150
    assert got["timeout"] == 2.5
    assert got["store"] == "firestore"
    assert got["collection"] == "intents"
    assert got["prefix"] == "desk7"


def test_unknown_signal_store_is_a_clear_configuration_error(tmp_path):
    done = load_settings(tmp_path, SIGNAL_STORE="mongo")
    assert done.returncode != 0
    assert "SIGNAL_STORE must be 'local' or 'firestore', not 'mongo'" in done.stderr


@pytest.mark.parametrize("value", ["abc", "1.5"])
def test_bad_numbers_are_rejected_at_start(tmp_path, value):
    done = load_settings(tmp_path, ALPACA_RATE_LIMIT_PER_MIN=value)
    assert done.returncode != 0
    assert (
        f"ALPACA_RATE_LIMIT_PER_MIN must be a whole number from 1 to 100000, not {value!r}"
        in done.stderr
    )


def test_check_deploy_is_clean_with_the_production_variables(tmp_path):
    env = child_env()
    env.update(
        DJANGO_SECRET_KEY="p" * 20 + "Xq9!vR2#mL7@wK4$zT1%nB8^hY5&jC3*",
        DJANGO_SECURE="true",
        DJANGO_ALLOWED_HOSTS="brokerops.example.com",
        DATABASE_URL="postgres://app:pw@db.internal:5432/brokerops",
        REDIS_URL="redis://cache.internal:6379/0",
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_check_deploy_flags_the_dev_defaults(tmp_path):
    env = child_env()
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "security.W009" in done.stderr + done.stdout  # the dev-only SECRET_KEY
