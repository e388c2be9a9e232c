"""The Celery app of ``accounts_bench.py``'s workers: the project's app, plus one Redis list entry
per task sent by a fan-out wave (the account and when) and per task start (the account, the
start, the worker), so the benchmark sees how long each fanned-out task waited for a worker after
its wave sent it, and on which worker it ran."""

import json
import os
import time

from celery.signals import before_task_publish, task_prerun

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
        "started": time.time(),
        "worker": os.getpid(),
    }
    redis.Redis.from_url(settings.REDIS_URL).rpush(STARTS_KEY, json.dumps(entry))


@before_task_publish.connect
def _record_sent(sender=None, body=None, **_):
    """A wave sends the account's task now: it is due from this moment."""
    import redis
    from django.conf import settings

    if sender != "reconciliation.run":
        return
    kwargs = body[1] if isinstance(body, tuple | list) else {}
    entry = {"account": kwargs.get("account"), "sent": time.time()}
    redis.Redis.from_url(settings.REDIS_URL).rpush(STARTS_KEY, json.dumps(entry))
