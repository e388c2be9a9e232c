"""The request budget shared by every worker: a token bucket, in Redis or in-process.

Every HTTP attempt (retries included) takes a token first. The bucket holds ``burst`` tokens and
refills at ``(rate_per_min - burst) / 60`` per second, so no 60 s window ever sees more than
``rate_per_min`` requests (``burst`` + refill) while the long-run rate stays close to the budget
(190/min for the default 200 and a burst of 10).

After a 429 the gateway calls :meth:`pause`: every worker then waits until the broker's reset time
(a Redis key with an expiry, or a deadline in-process). Waiting is bounded: a token that cannot be
had within ``max_wait_s`` raises :class:`BrokerRateLimited` instead of blocking a worker, and says
why (``paused by a 429 until ...`` or ``no request slot within ...``).

A pause never lasts longer than ``max_pause_s`` (``ALPACA_MAX_PAUSE_S``, default 65 s: Alpaca's
window is one minute), whoever set it: a longer pause passed to :meth:`pause` is clamped, and a
longer one already stored in Redis (left by an older version after a ``Retry-After: 86400``) is
cut back to the cap the first time a worker sees it, with a warning.

Redis keys are scoped by a hash of the API key, never the key itself. The Redis bucket uses the
Redis server's clock (``TIME``), so workers on different machines agree on it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis

from brokerops import metrics

from .errors import DEFAULT_MAX_PAUSE_S, BrokerRateLimited, BrokerUnavailable

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


@dataclass(frozen=True)
class LimiterState:
    """A read of the shared budget (for the admin's dashboard): ``tokens`` of ``capacity`` are
    available now; ``paused_for_s`` > 0 while a 429's pause is in force; ``next_free_in_s`` is
    when the next request may go (0: now)."""

    tokens: float
    capacity: int
    rate_per_min: int
    paused_for_s: float
    next_free_in_s: float

    @property
    def paused(self) -> bool:
        return self.paused_for_s > 0


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

    def __init__(self, rate_per_min: int, burst: int | None, max_pause_s: float) -> None:
        if rate_per_min < 1:
            raise ValueError("rate_per_min must be at least 1")
        if not max_pause_s > 0:
            raise ValueError("max_pause_s must be positive")
        self.max_pause_s = float(max_pause_s)
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
        max_pause_s: float = DEFAULT_MAX_PAUSE_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(rate_per_min, burst, max_pause_s)
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(self.capacity)
        self._stamp = clock()
        self._paused_until = 0.0

    def _try(self) -> tuple[float, bool]:
        """Take a token and return ``(0, False)``, or return the seconds to wait before trying
        again and whether that is a 429 pause."""
        with self._lock:
            now = self._clock()
            if now < self._paused_until:
                return min(self._paused_until - now, self.max_pause_s), True
            self._tokens = min(
                float(self.capacity), self._tokens + (now - self._stamp) * self.per_second
            )
            self._stamp = now
            if self._tokens >= 1.0 - _EPSILON:
                self._tokens = max(0.0, self._tokens - 1.0)
                return 0.0, False
            return (1.0 - self._tokens) / self.per_second, False

    def acquire(self) -> None:
        _acquire(self._try, self.max_wait_s, self._clock, self._sleep)

    def pause(self, seconds: float) -> None:
        if not seconds > 0:
            return
        seconds = min(seconds, self.max_pause_s)
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            # Refill only from the end of the pause: no burst when it lifts.
            self._tokens = 0.0
            self._stamp = self._paused_until


# KEYS[1] bucket hash, KEYS[2] pause key; ARGV[1] capacity, ARGV[2] tokens per second,
# ARGV[3] longest pause in milliseconds. Returns {wait_ms, paused, clamped}: wait_ms 0 when a token
# was taken; paused 1 when the wait is (the tail of) a 429 pause; clamped 1 when a stored pause
# longer than the cap (left by an older version) was cut back to it, for every worker.
_ACQUIRE_LUA = """
local max_pause_ms = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local clamped = 0
local pause_ms = redis.call('PTTL', KEYS[2])
if pause_ms and pause_ms > 0 then
  if pause_ms > max_pause_ms then
    redis.call('PEXPIRE', KEYS[2], max_pause_ms)
    pause_ms = max_pause_ms
    clamped = 1
    local stamp = tonumber(redis.call('HGET', KEYS[1], 'ts'))
    if stamp and stamp > now + max_pause_ms / 1000 then
      redis.call('HSET', KEYS[1], 'ts', tostring(now + max_pause_ms / 1000))
    end
  end
  return {pause_ms, 1, clamped}
end
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if ts > now + max_pause_ms / 1000 then
  ts = now + max_pause_ms / 1000
  clamped = 1
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate)
  ts = now
end
local wait_ms = 0
local paused = 0
if tokens >= 0.999999 then
  tokens = math.max(0, tokens - 1)
else
  wait_ms = math.ceil((1 - tokens) / rate * 1000)
  if ts > now then
    wait_ms = wait_ms + math.ceil((ts - now) * 1000)
    paused = 1
  end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 60000 + max_pause_ms)
return {wait_ms, paused, clamped}
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
        max_pause_s: float = DEFAULT_MAX_PAUSE_S,
        prefix: str = KEY_PREFIX,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(rate_per_min, burst, max_pause_s)
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

    def _try(self) -> tuple[float, bool]:
        max_pause_ms = max(1, int(self.max_pause_s * 1000))
        try:
            wait_ms, paused, clamped = self._acquire_script(
                keys=[self.bucket_key, self.pause_key],
                args=[self.capacity, self.per_second, max_pause_ms],
            )
        except redis.RedisError as exc:
            raise BrokerUnavailable(
                f"rate limiter unavailable (Redis: {type(exc).__name__}); request not sent"
            ) from None
        if int(clamped):
            logger.warning(
                "a stored rate-limit pause was longer than ALPACA_MAX_PAUSE_S; clamped to %gs",
                self.max_pause_s,
            )
        return int(wait_ms) / 1000.0, bool(int(paused))

    def acquire(self) -> None:
        _acquire(self._try, self.max_wait_s, self._clock, self._sleep)

    def state(self) -> LimiterState:
        """The shared bucket as every worker sees it now, read without taking a token (one
        atomic read of the bucket, the pause and the Redis clock; nothing is written).

        Raises :class:`BrokerUnavailable` when Redis does not answer.
        """
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.time()
                pipe.hmget(self.bucket_key, "tokens", "ts")
                pipe.pttl(self.pause_key)
                (seconds, micros), (tokens_raw, ts_raw), pause_ms = pipe.execute()
        except redis.RedisError as exc:
            raise BrokerUnavailable(
                f"rate limiter unavailable (Redis: {type(exc).__name__})"
            ) from None
        now = float(seconds) + float(micros) / 1_000_000
        if tokens_raw is None or ts_raw is None:  # never used, or idle long enough to expire
            tokens, stamp = float(self.capacity), now
        else:
            tokens, stamp = float(tokens_raw), float(ts_raw)
        if now > stamp:
            tokens = min(float(self.capacity), tokens + (now - stamp) * self.per_second)
            stamp = now
        paused_s = min(max(int(pause_ms), 0) / 1000.0, self.max_pause_s)
        next_free_s = 0.0 if tokens >= 1.0 - _EPSILON else (1.0 - tokens) / self.per_second
        next_free_s = max(next_free_s + (stamp - now), paused_s)
        return LimiterState(
            tokens=tokens,
            capacity=self.capacity,
            rate_per_min=self.rate_per_min,
            paused_for_s=paused_s,
            next_free_in_s=next_free_s,
        )

    def pause(self, seconds: float) -> None:
        if not seconds > 0:
            return
        seconds = min(seconds, self.max_pause_s)
        try:
            self._pause_script(
                keys=[self.bucket_key, self.pause_key], args=[max(1, int(seconds * 1000))]
            )
        except redis.RedisError as exc:
            # The pause is an optimisation over the bucket; the retry policy still waits.
            logger.warning("could not set the shared rate-limit pause: %s", type(exc).__name__)


def _acquire(
    attempt: Callable[[], tuple[float, bool]],
    max_wait_s: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    started = clock()
    deadline = started + max_wait_s
    while True:
        wait, paused = attempt()
        if wait <= 0:
            metrics.rate_limiter_wait_record(seconds=clock() - started)
            return
        remaining = deadline - clock()
        if wait > remaining:
            if paused:
                until = datetime.now(UTC) + timedelta(seconds=wait)
                message = (
                    f"rate limiter: paused by a 429 until {until:%Y-%m-%d %H:%M:%S} UTC "
                    f"({wait:.0f}s; a request waits at most {max_wait_s:g}s)"
                )
            else:
                message = f"rate limiter: no request slot within {max_wait_s:g}s"
            raise BrokerRateLimited(message, retry_after_s=wait)
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
    max_pause_s: float = DEFAULT_MAX_PAUSE_S,
) -> RateLimiter:
    """The limiter for these settings: Redis when ``redis_url`` is set, else one in-process
    limiter per (API key, budget) shared by every gateway of this process."""
    if redis_url:
        return RedisLimiter.from_url(
            redis_url,
            rate_per_min,
            api_key=api_key,
            burst=burst,
            max_wait_s=max_wait_s,
            max_pause_s=max_pause_s,
        )
    key = (key_scope(api_key), rate_per_min, burst, max_wait_s, max_pause_s)
    with _process_limiters_lock:
        limiter = _process_limiters.get(key)
        if limiter is None:
            limiter = InProcessLimiter(
                rate_per_min, burst=burst, max_wait_s=max_wait_s, max_pause_s=max_pause_s
            )
            _process_limiters[key] = limiter
        return limiter
