"""Fixtures shared by the whole suite.

Tests that need a real service (Redis, PostgreSQL, the Firestore emulator, Debian's chromium) ask
for it through :func:`require_service`. On a newcomer's machine a missing service skips those
tests with the reason; `.ci/run` sets ``BROKEROPS_REQUIRE_SERVICES=1`` so that on CI a missing
service fails the run instead of quietly skipping it.

Under pytest-xdist (``./dev test -n 2``) each worker is a process of its own: pytest-django suffixes
its test database (``_gw0``, ``_gw1``), the Firestore emulator and every port are its own, and
:func:`_redis_of_this_worker` moves ``REDIS_URL`` and ``TEST_REDIS_URL`` to Redis databases of its
own, so that locks, rate limiters and Celery queues of two workers never meet.
"""

import os
import shutil
from urllib.parse import urlsplit, urlunsplit

import pytest

pytest_plugins = ["tests.firestore_emulator"]

REQUIRE_SERVICES = os.environ.get("BROKEROPS_REQUIRE_SERVICES") == "1"
DEFAULT_TEST_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS_DATABASES = 16  # redis-server's default ``databases``


def xdist_worker() -> tuple[int, int]:
    """(this worker's index, the number of workers) under pytest-xdist; (0, 1) without it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... (set by xdist)
    if not worker.startswith("gw"):
        return 0, 1
    return int(worker[2:]), int(os.environ["PYTEST_XDIST_WORKER_COUNT"])


def worker_redis_url(url: str, *, worker: int, workers: int) -> str:
    """``url`` moved to Redis database ``db + worker * workers``: worker k of n takes every n-th
    database from each base, so ``REDIS_URL`` on db a and ``TEST_REDIS_URL`` on db a+1 give the n
    workers the 2n databases a .. a+2n-1, none shared."""
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0) + worker * workers
    if db >= REDIS_DATABASES:
        raise pytest.UsageError(
            f"{url} for xdist worker {worker} of {workers} needs Redis db {db}: "
            f"pick lower databases (each worker k of n uses db + k*n)"
        )
    return urlunsplit(parts._replace(path=f"/{db}"))


def _redis_of_this_worker() -> None:
    """Give this xdist worker its own Redis databases (worker 0 keeps the ones it was given).

    Django's settings were read before any conftest (pytest-django sets Django up first), so the
    settings and the Celery app that copied ``REDIS_URL`` are moved too; the environment is, for
    the processes tests start (workers, listeners, commands)."""
    index, workers = xdist_worker()
    if index == 0 or os.environ.get("BROKEROPS_TEST_REDIS_MOVED") == str(index):
        return  # the first worker, or moved already
    os.environ["BROKEROPS_TEST_REDIS_MOVED"] = str(index)
    for name in ("REDIS_URL", "TEST_REDIS_URL"):
        if os.environ.get(name):
            os.environ[name] = worker_redis_url(os.environ[name], worker=index, workers=workers)
    if not os.environ.get("REDIS_URL"):
        return
    from django.conf import settings

    from brokerops.celery import app

    url = os.environ["REDIS_URL"]
    settings.REDIS_URL = settings.CELERY_BROKER_URL = settings.CELERY_RESULT_BACKEND = url
    app.conf.broker_url = app.conf.result_backend = url


_redis_of_this_worker()


def require_service(name: str, problem: str) -> None:
    """Fail (on CI) or skip (elsewhere) because service ``name`` is unusable."""
    message = f"{name} unavailable: {problem}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (BROKEROPS_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a real Redis for tests (``TEST_REDIS_URL``, else db 15 on loopback; each xdist
    worker its own), checked live."""
    import redis

    # Unset, each xdist worker counts down from db 15 (15, 14, ...).
    url = os.environ.get("TEST_REDIS_URL") or f"redis://127.0.0.1:6379/{15 - xdist_worker()[0]}"
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
