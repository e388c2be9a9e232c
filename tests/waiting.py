"""Waiting on a condition instead of sleeping a fixed time (tests of long-running processes)."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_S = 0.02


def wait_for(condition: Callable[[], object], *, timeout_s: float = 10.0, what: str) -> None:
    """Return as soon as ``condition()`` is true; fail the test after ``timeout_s`` saying
    ``what`` was awaited."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(POLL_S)
