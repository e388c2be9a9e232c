"""Waiting on a condition instead of sleeping a fixed time (tests of long-running processes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
POLL_S = 0.02


def wait_for(
    condition: Callable[[], T], *, timeout_s: float = 10.0, what: str, poll_s: float = POLL_S
) -> T:
    """Return ``condition()``'s first true value as soon as there is one; fail the test after
    ``timeout_s`` saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(poll_s)
