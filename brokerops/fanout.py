"""The fan-out: one beat entry per job, one task per account (docs/design.md section 16).

Beat fires ``accounts.fan_out`` once per interval for each per-account job (the reconciliation,
the order cycle, the order sync); it enqueues that job once per configured account, with the
account's name as the task's ``account`` keyword, on ``ACCOUNTS_QUEUE``. Each task waits a random
part of the first ``FANOUT_SPREAD`` of the interval, so 200 accounts do not all read their broker
and the database in the same second; each expires after one interval, so a backlog never runs a
pile of stale jobs. One account's runs never overlap: each job takes its single-flight lock named
for the account (:mod:`brokerops.locks`), and a worker that dies frees only that lock.

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


@shared_task(name=TASK_NAME, bind=True)
def fan_out_task(self, task_name: str, interval_s: float) -> list[str]:
    """Enqueue ``task_name`` once per configured account (``account=`` its name), spread over the
    first part of ``interval_s``, on ``ACCOUNTS_QUEUE``; returns the accounts, in order."""
    spread = fanout_spread_s(interval_s)
    names = configured().names
    for name in names:
        self.app.send_task(
            task_name,
            kwargs={"account": name},
            countdown=_jitter.uniform(0, spread) if spread else 0,
            expires=interval_s,
            queue=settings.ACCOUNTS_QUEUE,
        )
    logger.info("%s: enqueued for %s account(s) within %.1f s", task_name, len(names), spread)
    return names
