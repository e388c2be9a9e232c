"""Migrations are complete and apply on SQLite and on PostgreSQL, groups included."""

import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.environment import child_env

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess:
    env = child_env(DATABASE_URL=database_url)
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


GROUPS_PROBE = (
    "from django.contrib.auth.models import Group;"
    "print(sorted((g.name, p.codename) for g in Group.objects.all()"
    " for p in g.permissions.all()))"
)


def assert_migrates_with_groups(database_url: str, cwd: Path) -> None:
    done = manage("migrate", "--noinput", database_url=database_url, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    done = manage("shell", "-c", GROUPS_PROBE, database_url=database_url, cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert "('compliance', 'view_orderattempt')" in done.stdout
    assert "('compliance', 'view_localsignal')" in done.stdout
    assert "('operations', 'trigger_reconciliation')" in done.stdout
    assert "('compliance', 'trigger_reconciliation')" not in done.stdout


def test_no_model_change_lacks_a_migration(tmp_path):
    done = manage(
        "makemigrations", "--check", "--dry-run", database_url="sqlite:///:memory:", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_migrations_apply_on_sqlite(tmp_path):
    assert_migrates_with_groups(f"sqlite:///{tmp_path / 'fresh.sqlite3'}", tmp_path)


@pytest.mark.postgres
def test_migrations_apply_on_postgresql(tmp_path, postgres_url):
    name = f"brokerops_migrate_{uuid.uuid4().hex[:10]}"
    admin_dsn = postgres_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        base = postgres_url.rsplit("/", 1)[0]
        assert_migrates_with_groups(f"{base}/{name}", tmp_path)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
