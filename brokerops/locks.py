"""Single-flight locks shared by every worker (Redis), or by this process (no Redis).

A Redis lock carries an expiry, so a worker that dies holding it cannot block the job forever;
the next holder then cleans up what the dead one left (e.g. a run still marked running).
"""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from django.conf import settings

logger = logging.getLogger(__name__)

_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


@cache
def _redis_client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)


@contextmanager
def single_flight(name: str, *, ttl_s: float) -> Iterator[bool]:
    """``with single_flight("reconciliation", ttl_s=900) as acquired:`` never waits.

    ``acquired`` is False when another holder has it. The lock expires after ``ttl_s`` seconds
    (Redis), which must exceed the longest legitimate hold.
    """
    if settings.REDIS_URL:
        lock = _redis_client(settings.REDIS_URL).lock(f"brokerops:lock:{name}", timeout=ttl_s)
        acquired = lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                _release_redis(lock)
        return
    with _local_guard:
        lock = _local_locks.setdefault(name, threading.Lock())
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


def _release_redis(lock) -> None:
    from redis.exceptions import LockError

    try:
        lock.release()
    except LockError:
        # The lock expired while held (a run longer than its ttl) and may belong to another
        # holder now: it is not ours to release. The run itself has been recorded either way.
        logger.warning("lock %s expired while held; its ttl is shorter than the work", lock.name)
