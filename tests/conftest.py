"""Fixtures shared by the whole suite.

Tests that need a real service (Redis, PostgreSQL, the Firestore emulator, Debian's chromium) ask
for it through :func:`require_service`. On a newcomer's machine a missing service skips those
tests with the reason; `.ci/run` sets ``BROKEROPS_REQUIRE_SERVICES=1`` so that on CI a missing
service fails the run instead of quietly skipping it.
"""

import os
import shutil

import pytest

pytest_plugins = ["tests.firestore_emulator"]

REQUIRE_SERVICES = os.environ.get("BROKEROPS_REQUIRE_SERVICES") == "1"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_TEST_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def require_service(name: str, problem: str) -> None:
    """Fail (on CI) or skip (elsewhere) because service ``name`` is unusable."""
    message = f"{name} unavailable: {problem}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (BROKEROPS_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a real Redis for tests (``TEST_REDIS_URL``, else db 15 on loopback), checked live."""
    import redis

    url = os.environ.get("TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        require_service("Redis", f"{url}: {exc}")
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a real PostgreSQL server for tests that create their own databases."""
    import psycopg

    url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL)
    try:
        psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=3).close()
    except psycopg.Error as exc:
        require_service("PostgreSQL", f"{url}: {exc}")
    return url


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium binary for Playwright (``playwright install`` cannot download here)."""
    path = shutil.which("chromium")
    if path is None:
        require_service("chromium", "Debian's chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _celery_tasks_run_in_the_test_process():
    """Tasks run eagerly in tests, whatever REDIS_URL says (CI sets it for locks and limiters);
    the Celery worker itself is exercised by tests that start one."""
    from brokerops.celery import app

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = eager


@pytest.fixture(autouse=True, scope="session")
def _flush_may_empty_the_audit_tables():
    """Transactional tests end with Django's ``flush``, which empties tables with DELETE on
    SQLite: let it through the append-only triggers (PostgreSQL's TRUNCATE does not fire them)."""
    from django.test import TransactionTestCase

    from audit.triggers import audit_maintenance

    teardown = TransactionTestCase._fixture_teardown

    def _fixture_teardown(self):
        with audit_maintenance("test database reset"):
            return teardown(self)

    TransactionTestCase._fixture_teardown = _fixture_teardown
    yield
    TransactionTestCase._fixture_teardown = teardown
