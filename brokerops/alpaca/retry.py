"""Retry policy for idempotent reads (tenacity), with an injectable clock and sleep.

Retried: :class:`BrokerRateLimited` and :class:`BrokerUnavailable` (429, 5xx, timeouts, resets).
Never retried: not found, rejected, malformed. Order submission never goes through this at all.

Wait before attempt *n+1*: exponential backoff ``min(max_backoff_s, base_s * 2**(n-1))`` with
"equal jitter" (half fixed, half random), but never less than the broker's ``Retry-After`` /
``X-RateLimit-Reset`` hint (already capped at ``ALPACA_MAX_PAUSE_S`` by the error mapping, so a
``Retry-After: 86400`` hands the caller 65 s, not a day). Stops after ``max_attempts`` attempts
or when the next wait would end past ``max_total_s`` since the first attempt (then the last error
is raised as it was).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import tenacity

from .errors import BrokerRateLimited, BrokerUnavailable

logger = logging.getLogger(__name__)
T = TypeVar("T")
RETRYABLE = (BrokerRateLimited, BrokerUnavailable)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    max_total_s: float = 30.0
    base_s: float = 0.5
    max_backoff_s: float = 8.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def backoff(self, attempt_number: int, hint_s: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt_number`` (1-based)."""
        ceiling = min(self.max_backoff_s, self.base_s * (2 ** (attempt_number - 1)))
        wait = ceiling / 2 + self.random() * ceiling / 2
        if hint_s is not None:
            wait = max(wait, hint_s)
        return wait

    def call(self, fn: Callable[[], T], *, what: str = "broker read") -> T:
        """Run ``fn`` under this policy; raise its last error when attempts or time run out."""
        started = self.clock()

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            hint = exc.retry_after_s if isinstance(exc, BrokerRateLimited) else None
            return self.backoff(state.attempt_number, hint)

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                return True
            return (self.clock() - started) + state.upcoming_sleep > self.max_total_s

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.warning(
                "%s failed (%s: %s); attempt %d/%d, retrying in %.2fs",
                what,
                type(exc).__name__,
                exc,
                state.attempt_number,
                self.max_attempts,
                state.upcoming_sleep,
            )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RETRYABLE),
            wait=wait,
            stop=stop,
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn)


NO_RETRY = RetryPolicy(max_attempts=1)
