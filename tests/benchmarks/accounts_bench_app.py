"""The Celery app of ``accounts_bench.py``'s workers: the project's app, plus one Redis list entry
per task start (the account, the task's ETA and the start), so the benchmark sees how late each
fanned-out task started after it was due, and on which worker."""

import json
import os
import time

from celery.signals import task_prerun

from brokerops.celery import app
from tests.benchmarks.accounts_bench import STARTS_KEY

__all__ = ["app"]


@task_prerun.connect
def _record_start(task=None, kwargs=None, **_):
    import redis
    from django.conf import settings

    if task is None or task.name != "reconciliation.run":
        return
    entry = {
        "account": (kwargs or {}).get("account"),
        "eta": task.request.eta,
        "started": time.time(),
        "worker": os.getpid(),
    }
    redis.Redis.from_url(settings.REDIS_URL).rpush(STARTS_KEY, json.dumps(entry))
