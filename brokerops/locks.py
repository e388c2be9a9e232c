"""Single-flight locks: leases shared by every worker (docs/design.md section 4, "Locks are
leases").

``with single_flight("reconciliation") as acquired:`` never waits: ``acquired`` is False while
another holder has the lock. Where the lock lives depends on the set-up:

- **Redis** (``REDIS_URL`` set): a Redis lock with a short lease (``LOCK_LEASE_S``, 60 s by
  default) that a background thread renews every third of the lease while the holder runs. A long
  run keeps the lock; a killed worker stops renewing and frees it within one lease.
- **PostgreSQL without Redis**: a session-level advisory lock (``pg_try_advisory_lock``) taken on
  a connection of its own, so Django closing or recycling its connections never drops it. Every
  process on the database sees it; it dies with the connection, so a killed holder frees it at
  once.
- **Otherwise** (SQLite, no Redis: the embedded set-up): a lock of this process only. Two
  processes on one SQLite file are not kept apart (the embedded set-up runs one process).

Failures of the lock service are never a redis traceback:

- Redis unreachable when the lock is taken: :class:`LockUnavailable` (``"Redis at HOST:PORT is
  unreachable: ..."``), raised before the ``with`` body runs.
- Redis lost while the lock is held (renewal or release fails, or the lease ran out and someone
  else took it): one warning line per hold, never an exception out of the ``with`` block; the work
  in the block is the caller's to record.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

DEFAULT_LEASE_S = 60.0
KEY_PREFIX = "brokerops:lock:"

_local_locks: dict[str, threading.Lock] = {}
_held = threading.local()  # per thread: locks held (depth), callbacks for their release
_local_guard = threading.Lock()


class LockUnavailable(Exception):
    """The lock service cannot be reached, so nobody can tell whether another holder runs.

    The message is one line an operator can act on, e.g. ``Redis at 127.0.0.1:6379 is
    unreachable: Error 111 connecting to 127.0.0.1:6379. Connection refused.``
    """


def lock_backend() -> str:
    """Where :func:`single_flight` keeps its locks: ``"redis"``, ``"postgresql"`` or
    ``"process"`` (this process only)."""
    if settings.REDIS_URL:
        return "redis"
    from django.db import connections

    if connections["default"].vendor == "postgresql":
        return "postgresql"
    return "process"


@contextmanager
def single_flight(
    name: str, *, lease_s: float | None = None, ttl_s: float | None = None
) -> Iterator[bool]:
    """Hold the lock ``name`` for the ``with`` block if nobody else does; never waits.

    ``lease_s`` (Redis only) overrides ``LOCK_LEASE_S``: how long the lock outlives a holder that
    stopped renewing it. ``ttl_s`` is accepted and ignored while callers drop it (the lease, not
    the longest run, now bounds how long a dead holder blocks the lock).
    Raises :class:`LockUnavailable` when Redis cannot be reached.
    """
    del ttl_s  # superseded by the renewed lease
    callbacks: list[Callable[[], None]] = []
    try:
        with _backend_lock(name, lease_s) as acquired:
            _held.depth = getattr(_held, "depth", 0) + acquired
            try:
                yield acquired
            finally:
                _held.depth -= acquired
                if not _held.depth:
                    callbacks, _held.callbacks = getattr(_held, "callbacks", []), []
    finally:  # the lock is released here
        for callback in callbacks:
            try:
                callback()
            except Exception:  # the block's own outcome stands; the callback's failure is logged
                logger.exception("after-lock callback %r failed", callback)


def after_locks_released(callback: Callable[[], None]) -> None:
    """Run ``callback`` once this thread holds no :func:`single_flight` lock: at once, or when
    the last one it holds is released (whatever the block's outcome).

    For work that must never hold a lock up, such as an alert's delivery to a receiver that may
    answer slowly (docs/design.md, section 13)."""
    if getattr(_held, "depth", 0):
        _held.callbacks = [*getattr(_held, "callbacks", []), callback]
    else:
        callback()


@contextmanager
def _backend_lock(name: str, lease_s: float | None) -> Iterator[bool]:
    backend = lock_backend()
    if backend == "redis":
        lease = float(lease_s or getattr(settings, "LOCK_LEASE_S", DEFAULT_LEASE_S))
        with _redis_lease(name, settings.REDIS_URL, lease) as acquired:
            yield acquired
    elif backend == "postgresql":
        with _advisory_lock(name) as acquired:
            yield acquired
    else:
        with _process_lock(name) as acquired:
            yield acquired


def redis_location(url: str) -> str:
    """``host:port`` (or the socket path) of a Redis URL, without credentials."""
    kwargs = _redis_client(url).connection_pool.connection_kwargs
    if kwargs.get("path"):
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def redis_unreachable(url: str, exc: BaseException) -> LockUnavailable:
    """The one-line error for a Redis that does not answer."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return LockUnavailable(f"Redis at {redis_location(url)} is unreachable: {detail}")


def check_redis() -> None:
    """Raise :class:`LockUnavailable` when ``REDIS_URL`` is set and Redis does not answer a PING
    (operator commands check it first, to name Redis rather than what it broke)."""
    import redis

    if not settings.REDIS_URL:
        return
    try:
        _redis_client(settings.REDIS_URL).ping()
    except redis.RedisError as exc:
        raise redis_unreachable(settings.REDIS_URL, exc) from None


# --- Redis: a renewed lease --------------------------------------------------------------------


@cache
def _redis_client(url: str):
    import redis

    # Short socket timeouts: the renewal must finish well within a lease even when Redis hangs.
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


class _Lease:
    """One hold of a Redis lock, renewed from a daemon thread; warns at most once."""

    def __init__(self, lock: Any, name: str, lease_s: float, location: str) -> None:
        self.lock, self.name, self.lease_s, self.location = lock, name, lease_s, location
        self.stopped = threading.Event()
        self.lost = False
        self._warned = False
        self._thread = threading.Thread(target=self._renew, name=f"lock-lease:{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _renew(self) -> None:
        from redis.exceptions import LockError, RedisError

        while not self.stopped.wait(self.lease_s / 3):
            try:
                self.lock.reacquire()
            except LockError:
                self.lost = True
                self.warn(
                    f"lock {self.name} lost: its lease ran out and it is no longer ours "
                    "(a pause longer than the lease, or Redis lost the key)"
                )
                return
            except RedisError as exc:
                # Keep trying: Redis may be back before the lease runs out.
                self.warn(
                    f"lock {self.name}: Redis at {self.location} is unreachable, the lease "
                    f"cannot be renewed and will run out ({_one_line(exc)})"
                )

    def release(self) -> None:
        from redis.exceptions import LockError, RedisError

        self.stopped.set()
        self._thread.join(timeout=self.lease_s)
        if self.lost:
            return
        try:
            self.lock.release()
        except LockError:
            self.warn(f"lock {self.name} lost before its release: it was no longer ours")
        except RedisError as exc:
            self.warn(
                f"lock {self.name}: Redis at {self.location} is unreachable, not released; "
                f"it frees itself within {self.lease_s:g} s ({_one_line(exc)})"
            )

    def warn(self, message: str) -> None:
        if self._warned:
            logger.debug("%s", message)
            return
        self._warned = True
        logger.warning("%s", message)


@contextmanager
def _redis_lease(name: str, url: str, lease_s: float) -> Iterator[bool]:
    from redis.exceptions import RedisError

    client = _redis_client(url)
    # thread_local=False: the renewal thread must see the token the holder's thread acquired.
    lock = client.lock(KEY_PREFIX + name, timeout=lease_s, thread_local=False)
    try:
        acquired = lock.acquire(blocking=False)
    except RedisError as exc:
        raise redis_unreachable(url, exc) from None
    if not acquired:
        yield False
        return
    lease = _Lease(lock, name, lease_s, redis_location(url))
    lease.start()
    try:
        yield True
    finally:
        lease.release()


# --- PostgreSQL without Redis: a session advisory lock -----------------------------------------


def advisory_key(name: str) -> int:
    """The signed 64-bit advisory lock key of lock ``name`` (stable across processes)."""
    digest = hashlib.blake2b((KEY_PREFIX + name).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def _advisory_lock(name: str) -> Iterator[bool]:
    from django.db import DatabaseError, connections

    key = advisory_key(name)
    # A connection of its own: the lock lives as long as this session, whatever Django does
    # with its connections meanwhile (closing them at the end of a task, on errors, ...).
    conn = connections.create_connection("default")
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            acquired = bool(cursor.fetchone()[0])
    except DatabaseError as exc:
        conn.close()
        raise LockUnavailable(
            f"PostgreSQL advisory lock {name} unavailable: {_one_line(exc)}"
        ) from None
    try:
        yield acquired
    finally:
        try:
            if acquired:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        except DatabaseError as exc:  # the session is gone, and the lock with it
            logger.warning("lock %s: advisory unlock failed (%s)", name, _one_line(exc))
        finally:
            conn.close()


# --- This process only -------------------------------------------------------------------------


@contextmanager
def _process_lock(name: str) -> Iterator[bool]:
    with _local_guard:
        lock = _local_locks.setdefault(name, threading.Lock())
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
