"""Per-API-key request budget with Alpaca's ``X-RateLimit-*`` headers.

Fixed windows: a key's window opens with its first request and lasts ``window_s`` (60 s, i.e.
requests per minute, unless a test shortens it). Within a window at most ``limit`` requests are
answered; the rest get 429 until the window ends. ``X-RateLimit-Reset`` is the Unix time (whole
seconds, rounded up) at which the window ends; ``Retry-After`` (sent only under
``Fidelity.retry_after_header``) the whole seconds until then. An account may have a budget of its
own (``PaperBroker.add_account(rate_limit_per_min=N)``): its keys are checked against it instead.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The verdict on one request and the header values to send with its response."""

    allowed: bool
    limit: int
    remaining: int
    reset_epoch: int
    retry_after_s: int

    def headers(self) -> list[tuple[str, str]]:
        return [
            ("X-RateLimit-Limit", str(self.limit)),
            ("X-RateLimit-Remaining", str(self.remaining)),
            ("X-RateLimit-Reset", str(self.reset_epoch)),
        ]


class RateLimiter:
    """Thread-safe fixed-window limiter; ``limit=None`` switches it off."""

    def __init__(
        self,
        limit: int | None = None,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._windows: dict[str, list[float]] = {}
        self.configure(limit, window_s)

    def forget(self, keys: Iterable[str]) -> None:
        """Close the open windows of ``keys`` (their budget changed): they start over."""
        with self._lock:
            for key in keys:
                self._windows.pop(key, None)

    def configure(self, limit: int | None, window_s: float = 60.0) -> None:
        """Set the budget (requests per window, None = off); open windows start over."""
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        with self._lock:
            self.limit = limit
            self.window_s = window_s
            self._windows.clear()

    def check(self, key: str, own_limit: int | None = None) -> RateDecision | None:
        """Count one request for ``key`` against ``own_limit`` (its account's own budget) or
        else the limiter's; None when neither is set (limiting off)."""
        limit = self.limit if own_limit is None else own_limit
        if limit is None:
            return None
        with self._lock:
            now = self._clock()
            window = self._windows.get(key)
            if window is None or now >= window[0] + self.window_s:
                window = [now, 0.0]
                self._windows[key] = window
            end = window[0] + self.window_s
            reset_epoch = math.ceil(end)
            retry_after = max(1, math.ceil(end - now))
            if window[1] >= limit:
                return RateDecision(False, limit, 0, reset_epoch, retry_after)
            window[1] += 1
            remaining = limit - int(window[1])
            return RateDecision(True, limit, remaining, reset_epoch, retry_after)
