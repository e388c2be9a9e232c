"""Waiting on a condition instead of sleeping a fixed time (tests of long-running processes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
POLL_S = 0.02
#: Only when to give up: a wait returns as soon as its condition holds, so a generous bound costs
#: nothing on a quiet machine and keeps a loaded one (CI's two workers beside other work) from
#: turning a slow start into a red run.
TIMEOUT_S = 30.0


def wait_for(
    condition: Callable[[], T], *, timeout_s: float = TIMEOUT_S, what: str, poll_s: float = POLL_S
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
