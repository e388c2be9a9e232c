"""Single-flight locks are leases (docs/design.md section 4, "Locks are leases"; issue 9 items 5,
9).

- Redis: a short lease (``LOCK_LEASE_S``) renewed while the holder runs, so a long run keeps the
  lock and a killed worker frees it within one lease;
- PostgreSQL without Redis: a session advisory lock, so two processes cannot both run and a killed
  holder frees it at once;
- Redis unreachable: one clear :class:`LockUnavailable`; Redis dying while the lock is held: one
  warning, never an exception out of the ``with`` block.

Contention and kills are tested between real OS processes.
"""

import logging
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from brokerops.locks import LockUnavailable, after_locks_released, single_flight
from tests.environment import child_env
from tests.own_redis import start_own_redis
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]

# One contender process: sets Django up, says "ready", waits for the go file, tries the lock
# until it gets it (or once, with TEST_ONCE), then holds it until the stop file or TEST_HOLD_S.
CONTENDER = r"""
import os, sys, time, django
django.setup()
from django.db import connections
from brokerops.locks import single_flight

name, go, stop = os.environ["TEST_LOCK_NAME"], os.environ["TEST_GO"], os.environ["TEST_STOP"]
once = os.environ.get("TEST_ONCE") == "1"
hold_s = float(os.environ.get("TEST_HOLD_S", "120"))
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
while True:
    with single_flight(name) as acquired:
        if acquired:
            print(f"acquired {time.time():.3f}", flush=True)
            connections.close_all()  # Django closing its connections must not free the lock
            deadline = time.monotonic() + hold_s
            while time.monotonic() < deadline and not os.path.exists(stop):
                time.sleep(0.02)
            break
    print(f"busy {time.time():.3f}", flush=True)
    if once:
        break
    time.sleep(0.1)
print("done", flush=True)
"""


class Contender:
    """A contender process; its stdout lines are collected by a reader thread."""

    def __init__(self, tmp_path: Path, name: str, env: dict[str, str], **extra: str) -> None:
        self.lines: list[str] = []
        self.go, self.stop = tmp_path / "go", tmp_path / f"stop-{uuid.uuid4().hex}"
        environment = child_env(
            **env,
            DJANGO_SETTINGS_MODULE="brokerops.settings",
            TEST_LOCK_NAME=name,
            TEST_GO=str(self.go),
            TEST_STOP=str(self.stop),
            **extra,
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CONTENDER],
            cwd=tmp_path,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def wait_line(self, prefix: str | tuple[str, ...], timeout_s: float = 60) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        stderr = self.proc.stderr.read() if self.proc.poll() is not None else ""
        raise AssertionError(f"no {prefix!r} line; got {self.lines}; stderr: {stderr}")

    def has(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for line in list(self.lines))

    def release(self) -> None:
        self.stop.touch()

    def finish(self, timeout_s: float = 30) -> None:
        self.release()
        try:
            self.proc.wait(timeout=timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(5)

    def kill(self) -> float:
        self.proc.send_signal(signal.SIGKILL)
        killed_at = time.time()
        self.proc.wait(timeout=10)
        return killed_at


@pytest.fixture
def contenders(tmp_path) -> Iterator[list[Contender]]:
    started: list[Contender] = []
    yield started
    for contender in started:
        contender.finish()


@pytest.fixture(scope="module")
def lock_database_url(postgres_url) -> Iterator[str]:
    """A PostgreSQL database of its own (advisory locks are per database): nothing to migrate."""
    name = f"brokerops_locks_{uuid.uuid4().hex[:10]}"
    admin_dsn = postgres_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def own_redis(tmp_path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A redis-server of this test's own (the test may stop it); its URL and process."""
    url, proc = start_own_redis(tmp_path)
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def lock_key(name: str) -> str:
    return f"brokerops:lock:{name}"


# --- Redis -------------------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_lock_is_a_short_lease_renewed_while_the_holder_runs(settings, redis_url):
    settings.REDIS_URL = redis_url
    settings.LOCK_LEASE_S = 1
    name = f"test-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(redis_url)
    try:
        with single_flight(name) as acquired:
            assert acquired
            assert 0 < client.pttl(lock_key(name)) <= 1000
            time.sleep(2.5)  # two and a half leases: renewal keeps it
            assert client.pttl(lock_key(name)) > 0
            with single_flight(name) as second:
                assert not second
        assert not client.exists(lock_key(name))
        with single_flight(name) as again:
            assert again
    finally:
        client.delete(lock_key(name))


@pytest.mark.redis
def test_a_killed_holder_frees_the_redis_lock_within_one_lease(tmp_path, redis_url, contenders):
    name = f"test-{uuid.uuid4().hex}"
    env = {
        "REDIS_URL": redis_url,
        "LOCK_LEASE_S": "2",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
    }
    try:
        holder = Contender(tmp_path, name, env)
        contenders.append(holder)
        holder.wait_line("ready")
        holder.go.touch()
        holder.wait_line("acquired")
        waiter = Contender(tmp_path, name, env)
        contenders.append(waiter)
        waiter.wait_line("busy")
        time.sleep(5)  # the holder runs for two and a half leases: it keeps the lock
        assert not waiter.has("acquired"), waiter.lines
        killed_at = holder.kill()
        acquired_at = float(waiter.wait_line("acquired", timeout_s=15).split()[1])
        # Within one lease (2 s) plus a loaded machine's scheduling delays; a lock that outlived
        # its holder would never be acquired (wait_line fails after 15 s).
        assert acquired_at - killed_at < 2 + 4, "the lease outlived its killed holder"
    finally:
        redis.Redis.from_url(redis_url).delete(lock_key(name))


def test_unreachable_redis_is_one_clear_lock_unavailable(settings):
    port = free_port()
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    ran = False
    with pytest.raises(LockUnavailable) as raised, single_flight(f"test-{uuid.uuid4().hex}"):
        ran = True
    assert not ran
    message = str(raised.value)
    assert message.startswith(f"Redis at 127.0.0.1:{port} is unreachable: "), message
    assert "\n" not in message


@pytest.mark.redis
def test_redis_dying_while_the_lock_is_held_warns_once_and_never_raises(
    settings, own_redis, caplog
):
    url, server = own_redis
    settings.REDIS_URL = url
    settings.LOCK_LEASE_S = 0.6  # renewed every 0.2 s
    finished = False
    with (
        caplog.at_level(logging.WARNING, logger="brokerops.locks"),
        single_flight(f"test-{uuid.uuid4().hex}") as acquired,
    ):
        assert acquired
        server.kill()
        server.wait()
        time.sleep(1.2)  # several renewals fail
        finished = True
    assert finished
    warnings = [r for r in caplog.records if r.name == "brokerops.locks"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].levelno == logging.WARNING
    assert "Redis" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage() and warnings[0].exc_info is None


@pytest.mark.redis
def test_a_lost_lease_is_not_released_from_under_the_next_holder(settings, redis_url, caplog):
    settings.REDIS_URL = redis_url
    settings.LOCK_LEASE_S = 1
    name = f"test-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(redis_url)
    try:
        with (
            caplog.at_level(logging.WARNING, logger="brokerops.locks"),
            single_flight(name) as acquired,
        ):
            assert acquired
            # The lease ran out (a frozen process) and another worker took the lock.
            client.set(lock_key(name), b"someone-else", px=30_000)
            time.sleep(0.8)
        assert client.get(lock_key(name)) == b"someone-else"
        warnings = [r for r in caplog.records if r.name == "brokerops.locks"]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "lost" in warnings[0].getMessage()
    finally:
        client.delete(lock_key(name))


# --- Without Redis -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_without_redis_a_second_holder_in_this_process_is_refused(settings):
    settings.REDIS_URL = None
    name = f"test-{uuid.uuid4().hex}"
    holding, release, results = threading.Event(), threading.Event(), []

    def hold() -> None:
        with single_flight(name) as acquired:
            results.append(acquired)
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        with single_flight(name) as second:
            assert not second
    finally:
        release.set()
        holder.join(10)
    assert results == [True]
    with single_flight(name) as again:
        assert again


@pytest.mark.postgres
def test_on_postgresql_without_redis_two_processes_never_both_run(
    tmp_path, lock_database_url, contenders
):
    name = f"test-{uuid.uuid4().hex}"
    env = {"DATABASE_URL": lock_database_url}
    pair = [Contender(tmp_path, name, env, TEST_ONCE="1") for _ in range(2)]
    contenders.extend(pair)
    for contender in pair:
        contender.wait_line("ready")
    pair[0].go.touch()  # both contend at the same moment
    outcomes = sorted(c.wait_line(("acquired", "busy")).split()[0] for c in pair)
    assert outcomes == ["acquired", "busy"], [c.lines for c in pair]


@pytest.mark.postgres
def test_on_postgresql_a_killed_holder_frees_the_lock_at_once(
    tmp_path, lock_database_url, contenders
):
    name = f"test-{uuid.uuid4().hex}"
    env = {"DATABASE_URL": lock_database_url}
    holder = Contender(tmp_path, name, env)
    contenders.append(holder)
    holder.wait_line("ready")
    holder.go.touch()
    holder.wait_line("acquired")
    waiter = Contender(tmp_path, name, env)
    contenders.append(waiter)
    waiter.wait_line("busy")
    time.sleep(1)
    assert not waiter.has("acquired"), waiter.lines
    killed_at = holder.kill()
    acquired_at = float(waiter.wait_line("acquired", timeout_s=15).split()[1])
    # At once: only the waiter's retry pause (0.1 s) and a loaded machine's scheduling delays,
    # far below the lease a Redis lock would need.
    assert acquired_at - killed_at < 5, "the advisory lock outlived its killed holder"


def test_work_after_the_locks_runs_once_the_outermost_lock_is_released():
    ran: list[str] = []
    after_locks_released(lambda: ran.append("at once"))
    with single_flight("after-a") as outer:
        with single_flight("after-b") as inner:
            assert outer and inner
            after_locks_released(lambda: ran.append("after both"))
        assert ran == ["at once"]
        with single_flight("after-a") as again:  # not acquired: holds nothing
            assert not again
        assert ran == ["at once"]
    assert ran == ["at once", "after both"]
    with single_flight("after-a") as free:
        assert free  # released before the callback ran
