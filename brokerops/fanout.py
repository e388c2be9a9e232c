"""The fan-out: one beat entry per job, one task per account (docs/design.md section 16).

Beat fires ``accounts.fan_out`` once per interval for each per-account job (the reconciliation,
the order cycle, the order sync); it enqueues that job once per configured account, with the
account's name as the task's ``account`` keyword, on ``ACCOUNTS_QUEUE``. The accounts go in
waves spread over the first ``FANOUT_SPREAD`` of the interval, in a random order each time, so
200 accounts do not all read their broker and the database in the same second; each task expires
after one interval, so a backlog never runs a pile of stale jobs. One account's runs never
overlap: each job takes its single-flight lock named for the account (:mod:`brokerops.locks`),
and a worker that dies frees only that lock.

Why waves and not a countdown per account task: a worker reserves every countdown task as soon
as it arrives (Celery's prefetch limit does not count them), so the idle workers took all 200 at
once and a worker held up by one slow account sat on the others' due tasks while the rest idled
(docs/benchmarks.md, the accounts benchmark). A wave's tasks are due at once: each worker takes
one at a time. Only the later waves' dispatches (small fan-out tasks) wait on a countdown.

An account removed from the ``ACCOUNTS_FILE`` gets no more work; its rows stay.
"""

from __future__ import annotations

import logging
import random

from celery import shared_task
from django.conf import settings

from .accounts import configured

logger = logging.getLogger(__name__)
TASK_NAME = "accounts.fan_out"
_jitter = random.SystemRandom()


def fanout_spread_s(interval_s: float) -> float:
    """The longest delay a fanned-out task waits: the first ``FANOUT_SPREAD`` of the interval."""
    return float(interval_s) * settings.FANOUT_SPREAD


#: At most this many waves per fan-out (fewer with fewer accounts).
WAVES = 10


@shared_task(name=TASK_NAME, bind=True)
def fan_out_task(
    self, task_name: str, interval_s: float, accounts: list[str] | None = None
) -> list[str]:
    """Enqueue ``task_name`` once per configured account (``account=`` its name) on
    ``ACCOUNTS_QUEUE``: the first wave now, each later one by a fan-out of its own (``accounts``:
    that wave's names) due later in the first part of ``interval_s``; returns the accounts
    enqueued now, in order."""
    if accounts is not None:  # a later wave: its accounts, now
        return _enqueue(self.app, task_name, interval_s, accounts)
    spread = fanout_spread_s(interval_s)
    names = configured().names
    order = _jitter.sample(names, len(names)) if spread else names
    waves = _waves(order, WAVES if spread else 1)
    for number, wave in enumerate(waves[1:], start=1):
        self.app.send_task(
            TASK_NAME,
            kwargs={"task_name": task_name, "interval_s": interval_s, "accounts": wave},
            countdown=spread * number / len(waves),
            expires=interval_s,
            queue=settings.ACCOUNTS_QUEUE,
        )
    logger.info(
        "%s: %s account(s) in %s wave(s) within %.1f s", task_name, len(names), len(waves), spread
    )
    return _enqueue(self.app, task_name, interval_s, waves[0] if waves else [])


def _waves(names: list[str], count: int) -> list[list[str]]:
    """``names`` cut into at most ``count`` waves of near-equal size, none empty."""
    count = max(1, min(count, len(names)))
    size, extra = divmod(len(names), count)
    waves, start = [], 0
    for number in range(count):
        end = start + size + (1 if number < extra else 0)
        waves.append(names[start:end])
        start = end
    return [wave for wave in waves if wave]


def _enqueue(app, task_name: str, interval_s: float, names: list[str]) -> list[str]:
    for name in names:
        app.send_task(
            task_name,
            kwargs={"account": name},
            expires=interval_s,
            queue=settings.ACCOUNTS_QUEUE,
        )
    return list(names)
