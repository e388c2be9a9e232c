"""``/healthz`` and ``/readyz`` (docs/design.md section 13), against real PostgreSQL and Redis.

The outage tests stop servers of their own (a redis-server and a PostgreSQL cluster started on
free ports), never the shared ones.
"""

import logging
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.db.utils import ConnectionHandler
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from brokerops import health
from reconciliation.models import ReconciliationRun
from tests import factories
from tests.own_postgres import own_postgres
from tests.own_redis import start_own_redis

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_failure_memory():
    health._failing.clear()
    health._redis_client.cache_clear()
    yield
    health._failing.clear()
    health._redis_client.cache_clear()


def recent_success(**fields) -> ReconciliationRun:
    now = timezone.now()
    fields.setdefault("started_at", now - timedelta(seconds=5))
    fields.setdefault("finished_at", now - timedelta(seconds=4))
    return factories.reconciliation_run(**fields)


def test_healthz_answers_without_touching_anything(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]
    assert not response.cookies


def test_readyz_is_200_with_everything_up(client, redis_url):
    recent_success()
    with override_settings(REDIS_URL=redis_url), CaptureQueriesContext(connection) as queries:
        response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    assert body["failing"] == []
    assert {name: check["state"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "redis": "ok",
        "reconciliation": "ok",
    }
    assert not response.cookies
    # One indexed query for the last run; the session table is never read or written.
    assert len(queries) == 1
    assert "django_session" not in queries[0]["sql"]


def test_readyz_needs_no_login_no_csrf_and_answers_head(client):
    recent_success()
    with override_settings(REDIS_URL=None):
        assert client.head("/readyz").status_code == 200
        assert client.post("/readyz").status_code == 405


def test_readyz_skips_redis_when_it_is_not_configured(client):
    recent_success()
    with override_settings(REDIS_URL=None):
        body = client.get("/readyz").json()
    assert body["checks"]["redis"] == {"state": "skipped", "detail": "REDIS_URL is not set"}


def test_probes_are_not_redirected_to_https(client):
    with override_settings(SECURE_SSL_REDIRECT=True, REDIS_URL=None):
        assert client.get("/healthz").status_code == 200
        assert client.get("/admin/").status_code == 301


def test_readyz_is_503_naming_redis_when_redis_stops(client, tmp_path, caplog):
    recent_success()
    url, proc = start_own_redis(tmp_path)
    try:
        with override_settings(REDIS_URL=url, READY_CHECK_TIMEOUT_S=1.0):
            assert client.get("/readyz").status_code == 200
            proc.kill()
            proc.wait()
            started = time.monotonic()
            with caplog.at_level(logging.INFO):
                first = client.get("/readyz")
                second = client.get("/readyz")
            elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert first.status_code == second.status_code == 503
    body = first.json()
    assert body["status"] == "not ready"
    assert body["failing"] == ["redis"]
    assert body["checks"]["redis"]["state"] == "failing"
    assert body["checks"]["redis"]["detail"] == "unreachable (ConnectionError)"
    assert body["checks"]["database"]["state"] == "ok"
    assert elapsed < 5
    # One warning for the outage, not an ERROR line per probe from Django's request logger.
    assert [(r.name, r.levelname) for r in caplog.records] == [("brokerops.health", "WARNING")]
    assert "unreachable" in caplog.records[0].getMessage()


def test_readyz_is_503_naming_the_database_when_postgresql_stops():
    with own_postgres() as cluster:
        handler = ConnectionHandler({"default": _db_config(cluster.url)})
        own = handler["default"]
        try:
            up = health.check_database(connection=own, timeout_s=2.0)
            assert up == health.Check("database", "ok", "postgresql")
            cluster.stop()
            started = time.monotonic()
            readiness = health.health_readiness(connection=own, redis_url="")
            elapsed = time.monotonic() - started
        finally:
            handler.close_all()
    assert not readiness.ok
    body = readiness.as_json()
    assert body["status"] == "not ready"
    assert body["failing"] == ["database"]
    assert body["checks"]["database"]["state"] == "failing"
    assert body["checks"]["database"]["detail"].startswith("unreachable (")
    # The run's age cannot be read without the database: not reported as a second failure.
    assert body["checks"]["reconciliation"]["state"] == "skipped"
    assert elapsed < 5


def test_readyz_is_503_when_the_database_is_unreachable_through_the_view(client, monkeypatch):
    """The view answers 503 on the database check as well (here: the configured database's
    connection parameters point at a port nothing listens on)."""
    real = connection.get_connection_params

    def closed_port_params():
        params = real()
        if connection.vendor == "postgresql":
            params.update(host="127.0.0.1", port=_closed_port())
        else:
            params.update(database="file:/nonexistent-dir/x.sqlite3?mode=rw")
        return params

    monkeypatch.setattr(connection, "get_connection_params", closed_port_params)
    with override_settings(REDIS_URL=None):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]


def test_a_stale_last_success_makes_readyz_503(client):
    old = timezone.now() - timedelta(seconds=1000)
    recent_success(started_at=old, finished_at=old + timedelta(seconds=1))
    # A later failed run and a dry run do not count as successes.
    factories.reconciliation_run(status=ReconciliationRun.Status.FAILED)
    recent_success(dry_run=True)
    with override_settings(REDIS_URL=None, READY_MAX_RUN_AGE_S=900):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["reconciliation"]
    assert body["checks"]["reconciliation"]["detail"] == "last success 999 s ago, over 900 s"


def test_with_several_accounts_one_stale_account_makes_readyz_503_naming_it(
    client, settings, monkeypatch
):
    from brokerops.accounts import AccountConfig, Accounts

    monkeypatch.setattr(health, "PROCESS_STARTED", time.monotonic())  # within the grace period

    settings.ACCOUNTS_FILE = "accounts.toml"
    settings.ACCOUNTS = Accounts(
        {
            "desk": AccountConfig("desk", "dk", 200, default=True),
            "client": AccountConfig("client", "cl", 200),
            "new": AccountConfig("new", "nw", 200),
        },
        from_file="accounts.toml",
    )
    old = timezone.now() - timedelta(seconds=1000)
    recent_success(account="desk")
    recent_success(account="client", started_at=old, finished_at=old + timedelta(seconds=1))
    with override_settings(REDIS_URL=None, READY_MAX_RUN_AGE_S=900):
        response = client.get("/readyz")
        # The newest run of any account is fresh; the client's own is not.
        assert response.status_code == 503
        detail = response.json()["checks"]["reconciliation"]["detail"]
        assert detail == "account client: last success 999 s ago, over 900 s"
        recent_success(account="client")
        response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    # "new" has no run yet: within the grace period after start it does not fail the check.
    assert response.json()["checks"]["reconciliation"]["detail"] == (
        "3 accounts; the oldest last success 4 s ago; no successful run yet: new"
    )


def test_a_fresh_install_is_ready_during_the_grace_period_only():
    grace = health.check_reconciliation(max_age_s=900, last_success=None, up_s=10)
    assert grace.state == "ok"
    assert grace.detail == "no successful run yet; 890 s of grace left after start"
    late = health.check_reconciliation(max_age_s=900, last_success=None, up_s=901)
    assert late.state == "failing"
    off = health.check_reconciliation(max_age_s=0, last_success=None, up_s=10**6)
    assert off.state == "skipped"


def test_a_fresh_install_answers_200(client):
    assert not ReconciliationRun.objects.exists()
    with override_settings(REDIS_URL=None):
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["reconciliation"]["state"] == "ok"


def _db_config(url: str) -> dict:
    import environ

    return environ.Env.db_url_config(url)


def _closed_port() -> int:
    from tests.ports import free_port

    return free_port()


def test_runs_that_cannot_be_read_fail_the_reconciliation_check(client):
    """Before the migrations ran (the table is missing), /readyz says so instead of a 500. The
    rename is rolled back with the test's transaction."""
    table = ReconciliationRun._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    with override_settings(REDIS_URL=None):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["reconciliation"]
    assert body["checks"]["reconciliation"]["state"] == "failing"
    assert body["checks"]["reconciliation"]["detail"].startswith("runs unreadable (")
