"""The Celery fan-out (docs/design.md section 16): beat fires one fan-out per interval, which
enqueues one task per configured account, spread with jitter over the first part of the interval,
on a queue of its own; each account's runs are single-flight under a lock of its own, and a killed
worker frees only its account's lock."""

from pathlib import Path

import pytest
import redis
import yaml
from celery.contrib.testing.worker import start_worker

from brokerops.celery import WORKER_QUEUES, app, beat_schedule
from brokerops.fanout import fan_out_task, fanout_spread_s
from brokerops.locks import single_flight
from reconciliation.models import ReconciliationRun
from reconciliation.services import run_lock_name
from tests.accounts.two_accounts import (  # noqa: F401 - two_accounts_fixture
    configure,
    signal,
    two_accounts_fixture,
)
from tests.foundation.test_locks import Contender, contenders, lock_key  # noqa: F401 - fixture
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
PER_ACCOUNT = {
    "reconcile": ("reconciliation.run", "RECONCILE_INTERVAL_S"),
    "submit-orders": ("orders.submit_pending", "ORDER_SUBMIT_INTERVAL_S"),
    "sync-orders": ("orders.sync_open", "ORDER_SYNC_INTERVAL_S"),
    "sync-activities": ("ledger.sync_activities", "ACTIVITIES_SYNC_INTERVAL_S"),
}


@pytest.fixture
def accounts_configured(settings, monkeypatch, tmp_path):
    """The two accounts of the ACCOUNTS_FILE; no broker is called."""
    urls = {"desk": "http://127.0.0.1:9", "client": "http://127.0.0.1:9"}
    configure(settings, monkeypatch, tmp_path / "accounts.toml", urls)


@pytest.fixture
def sent(monkeypatch):
    """What the fan-out hands the broker's transport: (task name, options) per message."""
    messages = []
    monkeypatch.setattr(
        fan_out_task.app, "send_task", lambda name, **options: messages.append((name, options))
    )
    return messages


def run_fan_out(sent, task_name: str, interval_s: float) -> list[str]:
    """The fan-out as beat fires it, then every later wave it sent as a worker would run it;
    returns the accounts enqueued, in the order they were."""
    enqueued = fan_out_task.apply(kwargs={"task_name": task_name, "interval_s": interval_s}).get()
    for name, options in list(sent):
        if name == "accounts.fan_out":
            enqueued += fan_out_task.apply(kwargs=options["kwargs"]).get()
    return enqueued


def test_the_fan_out_enqueues_one_task_per_account_spread_on_the_accounts_queue(
    accounts_configured, settings, sent
):
    settings.FANOUT_SPREAD = 0.2
    enqueued = run_fan_out(sent, "reconciliation.run", 300)

    assert sorted(enqueued) == ["client", "desk"]
    jobs = [(name, options) for name, options in sent if name == "reconciliation.run"]
    assert sorted(options["kwargs"]["account"] for _, options in jobs) == ["client", "desk"]
    for _, options in jobs:
        assert options["queue"] == settings.ACCOUNTS_QUEUE == "accounts"
        assert "countdown" not in options  # due at once: each worker takes one at a time
        assert options["expires"] == 300  # never run once the next fan-out has fired
    # The second wave is a fan-out of its own, due within the first fifth of the interval.
    waves = [options for name, options in sent if name == "accounts.fan_out"]
    assert len(waves) == 1
    assert 0 < waves[0]["countdown"] <= 60
    assert waves[0]["queue"] == "accounts" and waves[0]["expires"] == 300


def test_200_accounts_go_in_10_waves_over_the_spread_each_once(settings, sent, monkeypatch):
    from brokerops.accounts import AccountConfig, Accounts

    names = [f"acct-{i:03}" for i in range(200)]
    accounts = Accounts(
        {n: AccountConfig(name=n, client_order_id_prefix=f"a{i:03}", rate_limit_per_min=200)
         for i, n in enumerate(names)}
    )  # fmt: skip
    monkeypatch.setattr("brokerops.fanout.configured", lambda: accounts)
    settings.FANOUT_SPREAD = 0.1

    enqueued = run_fan_out(sent, "reconciliation.run", 300)

    assert sorted(enqueued) == names  # each account once
    waves = [options for name, options in sent if name == "accounts.fan_out"]
    assert sorted(w["countdown"] for w in waves) == [3.0 * k for k in range(1, 10)]
    assert [len(w["kwargs"]["accounts"]) for w in waves] == [20] * 9
    assert enqueued != names  # a random order: an account is not always in the first wave


def test_the_spread_is_a_part_of_the_interval(settings):
    settings.FANOUT_SPREAD = 0.5
    assert fanout_spread_s(30) == 15
    settings.FANOUT_SPREAD = 0
    assert fanout_spread_s(30) == 0


def test_without_spread_every_account_is_enqueued_at_once(accounts_configured, settings, sent):
    settings.FANOUT_SPREAD = 0
    fan_out_task.apply(kwargs={"task_name": "orders.sync_open", "interval_s": 60}).get()
    assert [(name, options["kwargs"]["account"]) for name, options in sent] == [
        ("orders.sync_open", "desk"),
        ("orders.sync_open", "client"),
    ]


def test_a_single_account_deployment_fans_out_to_its_one_account(sent):
    fan_out_task.apply(kwargs={"task_name": "orders.submit_pending", "interval_s": 30}).get()
    assert [(name, options["kwargs"]) for name, options in sent] == [
        ("orders.submit_pending", {"account": "default"})
    ]


def test_beat_fires_the_fan_out_for_the_per_account_jobs(settings):
    schedule = beat_schedule()
    for entry, (task_name, interval) in PER_ACCOUNT.items():
        every = float(getattr(settings, interval))
        job = schedule[entry]
        assert job["task"] == "accounts.fan_out"
        assert job["schedule"] == every
        assert job["kwargs"] == {"task_name": task_name, "interval_s": every}
        assert job["options"]["queue"] == settings.ACCOUNTS_QUEUE
    # The deployment-wide jobs stay as they were.
    assert schedule["verify-audit"]["task"] == "audit.verify"


def test_workers_consume_the_accounts_queue():
    assert app.conf.task_routes["accounts.*"] == {"queue": "accounts"}
    assert "accounts" in WORKER_QUEUES
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["worker"]["command"]
    queues = command.split(" -Q ", 1)[1].split()[0].split(",")
    assert set(queues) == set(WORKER_QUEUES)


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_each_accounts_reconciliation_after_the_fan_out(two_accounts, settings):
    two_accounts.brokers["client"].seed_position("MSFT", 5)
    two_accounts.store.put_documents([("s-client", signal("MSFT", 5, account="client"))])
    settings.FANOUT_SPREAD = 0.05  # within a second of the fan-out
    app.conf.task_always_eager = False
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, queues=WORKER_QUEUES):
            app.send_task(
                "accounts.fan_out", kwargs={"task_name": "reconciliation.run", "interval_s": 20}
            )
            wait_for(
                lambda: ReconciliationRun.objects.filter(status="succeeded").count() == 2,
                what="one succeeded run per account",
            )
    finally:
        app.conf.task_always_eager = True
    runs = dict(ReconciliationRun.objects.values_list("account", "positions_seen"))
    assert runs == {"desk": 0, "client": 1}
    assert set(ReconciliationRun.objects.values_list("trigger", flat=True)) == {"schedule"}


@pytest.mark.redis
def test_a_killed_worker_frees_only_its_accounts_lock(
    accounts_configured,
    tmp_path,
    redis_url,
    settings,
    contenders,  # noqa: F811
):
    """Two workers each hold one account's lock (Redis leases of 2 s); the desk's is killed:
    its lock frees within a lease, the client's stays held by its live holder."""
    settings.REDIS_URL = redis_url
    names = {account: run_lock_name(account) for account in ("desk", "client")}
    env = {
        "REDIS_URL": redis_url,
        "LOCK_LEASE_S": "2",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
    }
    try:
        holders = {}
        for account, name in names.items():
            holders[account] = Contender(tmp_path, name, env)
            contenders.append(holders[account])
            holders[account].wait_line("ready")
        holders["desk"].go.touch()  # one go file for both
        for holder in holders.values():
            holder.wait_line("acquired")

        holders["desk"].kill()

        def desk_lock_free() -> bool:
            with single_flight(names["desk"]) as acquired:
                return acquired

        wait_for(desk_lock_free, timeout_s=15, what="the killed worker's lock to free")
        with single_flight(names["client"]) as acquired:
            assert not acquired, "the live worker's lock was freed too"
    finally:
        client = redis.Redis.from_url(redis_url)
        client.delete(*(lock_key(name) for name in names.values()))
