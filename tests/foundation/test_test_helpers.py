"""The suite's own helpers that keep parallel workers apart and child processes clean."""

import pytest

from tests.conftest import worker_redis_url
from tests.environment import PROJECT_VARS, child_env


def test_each_xdist_worker_gets_redis_databases_no_other_worker_uses():
    base = {"REDIS_URL": "redis://127.0.0.1:6379/4", "TEST_REDIS_URL": "redis://127.0.0.1:6379/5"}
    used = [worker_redis_url(url, worker=k, workers=2) for k in range(2) for url in base.values()]
    assert used == [
        "redis://127.0.0.1:6379/4",
        "redis://127.0.0.1:6379/5",
        "redis://127.0.0.1:6379/6",
        "redis://127.0.0.1:6379/7",
    ]
    assert worker_redis_url("redis://:pw@host:6380/0", worker=3, workers=4) == (
        "redis://:pw@host:6380/12"
    )


def test_a_worker_beyond_redis_databases_is_a_usage_error_naming_the_rule():
    with pytest.raises(pytest.UsageError, match=r"db \+ k\*n"):
        worker_redis_url("redis://127.0.0.1:6379/14", worker=1, workers=2)


def test_a_child_process_sees_none_of_the_project_variables(monkeypatch):
    monkeypatch.setenv("WATCH_WORKERS", "9")  # read by settings.py: in the list without a copy
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/0")
    monkeypatch.setenv("UNRELATED", "kept")
    env = child_env(DATABASE_URL="sqlite:///x.sqlite3")
    assert {"WATCH_WORKERS", "REDIS_URL", "DATABASE_URL", "SIGNAL_STORE"} <= set(PROJECT_VARS)
    assert "WATCH_WORKERS" not in env and "REDIS_URL" not in env
    assert env["DATABASE_URL"] == "sqlite:///x.sqlite3" and env["UNRELATED"] == "kept"
