"""What the paper broker's HTTP side counts: requests per route template, answers per status,
429s. The server counts; the broker's handle (``PaperBroker.counters()`` and its kin) reads."""

from __future__ import annotations

import threading


class RequestCounters:
    """Thread-safe counters of one broker's HTTP traffic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = {}
        self._statuses: dict[int, int] = {}
        self._rate_limited = 0

    def count_request(self, method: str, template: str) -> None:
        with self._lock:
            key = (method, template)
            self._requests[key] = self._requests.get(key, 0) + 1

    def count_status(self, status: int) -> None:
        """One answer with ``status``; 0 for a connection reset without an answer."""
        with self._lock:
            self._statuses[status] = self._statuses.get(status, 0) + 1

    def count_rate_limited(self) -> None:
        with self._lock:
            self._rate_limited += 1

    def requests(self) -> dict[tuple[str, str], int]:
        """Requests per ``(method, route template)`` (a copy)."""
        with self._lock:
            return dict(self._requests)

    def total(self) -> int:
        with self._lock:
            return sum(self._requests.values())

    def rate_limited(self) -> int:
        with self._lock:
            return self._rate_limited

    def statuses(self) -> dict[int, int]:
        """Responses per HTTP status (a copy)."""
        with self._lock:
            return dict(self._statuses)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._statuses.clear()
            self._rate_limited = 0
