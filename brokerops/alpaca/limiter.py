"""The request budget shared by every worker: a token bucket, in Redis or in-process.

Every HTTP attempt (retries included) takes a token first. The bucket holds ``burst`` tokens and
refills at ``(rate_per_min - burst) / 60`` per second, so no 60 s window ever sees more than
``rate_per_min`` requests (``burst`` + refill) while the long-run rate stays close to the budget
(190/min for the default 200 and a burst of 10).

After a 429 the gateway calls :meth:`pause`: every worker then waits until the broker's reset time
(a Redis key with an expiry, or a deadline in-process). Waiting is bounded: a token that cannot be
had within ``max_wait_s`` raises :class:`BrokerRateLimited` instead of blocking a worker.

Redis keys are scoped by a hash of the API key, never the key itself. The Redis bucket uses the
Redis server's clock (``TIME``), so workers on different machines agree on it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

from .errors import BrokerRateLimited, BrokerUnavailable

logger = logging.getLogger(__name__)

DEFAULT_MAX_WAIT_S = 60.0
KEY_PREFIX = "brokerops:alpaca:rl"
# Float slack so that a wait of exactly (1 - tokens) / rate always yields a token.
_EPSILON = 1e-6


def key_scope(api_key: str | None) -> str:
    """A stable, non-reversible id for an API key (for Redis key names and logs)."""
    return hashlib.sha256((api_key or "").encode()).hexdigest()[:16]


def default_burst(rate_per_min: int) -> int:
    return max(1, min(10, rate_per_min // 20))


class RateLimiter(Protocol):
    def acquire(self) -> None:
        """Block until a request may be sent (bounded); raise BrokerRateLimited otherwise."""

    def pause(self, seconds: float) -> None:
        """Stop every user of this budget from sending for ``seconds`` (after a 429)."""


class NullLimiter:
    """No limit (tests and tools that bring their own)."""

    def acquire(self) -> None:
        return None

    def pause(self, seconds: float) -> None:
        return None


class _Bucket:
    """Shared arithmetic of both limiters; ``rate_per_min`` is the budget per 60 s window."""

    def __init__(self, rate_per_min: int, burst: int | None) -> None:
        if rate_per_min < 1:
            raise ValueError("rate_per_min must be at least 1")
        self.rate_per_min = rate_per_min
        self.capacity = burst if burst is not None else default_burst(rate_per_min)
        if not 1 <= self.capacity <= rate_per_min:
            raise ValueError("burst must be between 1 and rate_per_min")
        refill_per_min = rate_per_min - self.capacity
        # A budget equal to the burst refills at a trickle rather than never.
        self.per_second = max(refill_per_min, 1) / 60.0


class InProcessLimiter(_Bucket):
    """Thread-safe token bucket for one process (used when there is no Redis)."""

    def __init__(
        self,
        rate_per_min: int,
        *,
        burst: int | None = None,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(rate_per_min, burst)
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(self.capacity)
        self._stamp = clock()
        self._paused_until = 0.0

    def _try(self) -> float:
        """Take a token and return 0, or return the seconds to wait before trying again."""
        with self._lock:
            now = self._clock()
            if now < self._paused_until:
                return self._paused_until - now
            self._tokens = min(
                float(self.capacity), self._tokens + (now - self._stamp) * self.per_second
            )
            self._stamp = now
            if self._tokens >= 1.0 - _EPSILON:
                self._tokens = max(0.0, self._tokens - 1.0)
                return 0.0
            return (1.0 - self._tokens) / self.per_second

    def acquire(self) -> None:
        _acquire(self._try, self.max_wait_s, self._clock, self._sleep)

    def pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            # Refill only from the end of the pause: no burst when it lifts.
            self._tokens = 0.0
            self._stamp = self._paused_until


# KEYS[1] bucket hash, KEYS[2] pause key; ARGV[1] capacity, ARGV[2] tokens per second.
# Returns 0 when a token was taken, else the milliseconds to wait.
_ACQUIRE_LUA = """
local pause_ms = redis.call('PTTL', KEYS[2])
if pause_ms and pause_ms > 0 then
  return pause_ms
end
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate)
  ts = now
end
local wait_ms = 0
if tokens >= 0.999999 then
  tokens = math.max(0, tokens - 1)
else
  wait_ms = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 60000)
return wait_ms
"""

# KEYS[1] bucket hash, KEYS[2] pause key; ARGV[1] pause milliseconds. Only ever extends a pause,
# and empties the bucket so the first requests after the pause do not arrive as a burst.
_PAUSE_LUA = """
local ms = tonumber(ARGV[1])
local current = redis.call('PTTL', KEYS[2])
if current == nil or current < ms then
  redis.call('SET', KEYS[2], '1', 'PX', ms)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 + ms / 1000
redis.call('HSET', KEYS[1], 'tokens', '0', 'ts', tostring(now))
return ms
"""


class RedisLimiter(_Bucket):
    """Token bucket in Redis shared by every process using the same API key and Redis."""

    def __init__(
        self,
        client: redis.Redis,
        rate_per_min: int,
        *,
        api_key: str | None,
        burst: int | None = None,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        prefix: str = KEY_PREFIX,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(rate_per_min, burst)
        self._client = client
        scope = key_scope(api_key)
        self.bucket_key = f"{prefix}:{scope}:bucket"
        self.pause_key = f"{prefix}:{scope}:pause"
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._sleep = sleep
        self._acquire_script = client.register_script(_ACQUIRE_LUA)
        self._pause_script = client.register_script(_PAUSE_LUA)

    @classmethod
    def from_url(cls, url: str, rate_per_min: int, **kwargs) -> RedisLimiter:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return cls(client, rate_per_min, **kwargs)

    def _try(self) -> float:
        try:
            wait_ms = self._acquire_script(
                keys=[self.bucket_key, self.pause_key], args=[self.capacity, self.per_second]
            )
        except redis.RedisError as exc:
            raise BrokerUnavailable(
                f"rate limiter unavailable ({type(exc).__name__}); request not sent"
            ) from None
        return int(wait_ms) / 1000.0

    def acquire(self) -> None:
        _acquire(self._try, self.max_wait_s, self._clock, self._sleep)

    def pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            self._pause_script(
                keys=[self.bucket_key, self.pause_key], args=[max(1, int(seconds * 1000))]
            )
        except redis.RedisError as exc:
            # The pause is an optimisation over the bucket; the retry policy still waits.
            logger.warning("could not set the shared rate-limit pause: %s", type(exc).__name__)


def _acquire(
    attempt: Callable[[], float],
    max_wait_s: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    deadline = clock() + max_wait_s
    while True:
        wait = attempt()
        if wait <= 0:
            return
        remaining = deadline - clock()
        if wait > remaining:
            raise BrokerRateLimited(
                f"rate limiter: no request slot within {max_wait_s:g}s", retry_after_s=wait
            )
        sleep(wait)


_process_limiters: dict[tuple, InProcessLimiter] = {}
_process_limiters_lock = threading.Lock()


def build_limiter(
    *,
    redis_url: str | None,
    api_key: str | None,
    rate_per_min: int,
    burst: int | None = None,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
) -> RateLimiter:
    """The limiter for these settings: Redis when ``redis_url`` is set, else one in-process
    limiter per (API key, budget) shared by every gateway of this process."""
    if redis_url:
        return RedisLimiter.from_url(
            redis_url, rate_per_min, api_key=api_key, burst=burst, max_wait_s=max_wait_s
        )
    key = (key_scope(api_key), rate_per_min, burst, max_wait_s)
    with _process_limiters_lock:
        limiter = _process_limiters.get(key)
        if limiter is None:
            limiter = InProcessLimiter(rate_per_min, burst=burst, max_wait_s=max_wait_s)
            _process_limiters[key] = limiter
        return limiter
