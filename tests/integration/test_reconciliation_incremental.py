"""Incremental runs (docs/design.md section 18.3): the paper broker over loopback, the real
alpaca-py client; calls counted as runs count them (``run.api_calls``)."""

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from brokerops.intent.local import LocalSignalStore
from ledger.services import activities_sync
from reconciliation.models import OrdersReadBase, ReconciliationRun
from reconciliation.services import reconciliation_run
from tests import factories
from tests.integration.conftest import gateway_for

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED = 1600  # four pages of 500 in a full read


@pytest.fixture
def store():
    return LocalSignalStore()


@pytest.fixture
def account(broker):
    """An account with history: 1,200 closed orders in the look-back, resting orders (one of
    them ours, one of our prefix that no attempt names), and a fill in the ledger."""
    broker.set_auto_fill(False)
    start = timezone.now() - timedelta(hours=5)
    for n in range(CLOSED):
        broker.seed_order(
            "AAPL" if n % 2 else "MSFT",
            1,
            status="filled",
            submitted_at=start + timedelta(seconds=n),
            client_order_id=f"hist-{n}",
        )
    # Of our prefix, no attempt names it, closed before any run: found by every run.
    old = start - timedelta(minutes=30)
    broker.seed_order(
        "AAPL", 1, status="canceled", client_order_id="bo-stray-old", submitted_at=old
    )
    # Resting since before the first run: changes to them are found as leaving the open list.
    resting = {"type": "limit", "limit_price": "1", "time_in_force": "gtc"}
    for n in range(4):
        at = start + timedelta(seconds=CLOSED + n)
        broker.seed_order("TSLA", 1, client_order_id=f"rest-{n}", submitted_at=at, **resting)
    at = start + timedelta(seconds=CLOSED + 10)
    ours = broker.seed_order("SPY", 2, client_order_id="bo-s1-entry", submitted_at=at, **resting)
    factories.order_attempt(
        client_order_id="bo-s1-entry",
        signal_id="s1",
        symbol="SPY",
        status="open",
        broker_status="new",
        alpaca_order_id=ours["id"],
        created_at=timezone.now() - timedelta(hours=1),
    )
    at = start + timedelta(seconds=CLOSED + 20)
    broker.seed_order("MSFT", 1, client_order_id="bo-stray-open", submitted_at=at, **resting)
    broker.seed_order("AAPL", 1, client_order_id="first-fill")
    broker.fill_order("first-fill")  # a FILL activity
    activities_sync(gateway=gateway_for(broker))  # the ledger's first read: it has a cursor
    return broker


def run(gateway, store, **options) -> ReconciliationRun:
    return reconciliation_run(trigger="command", gateway=gateway, store=store, **options)


def read_of(run: ReconciliationRun) -> dict:
    return run.summary["orders_read"]


def findings(run: ReconciliationRun) -> list[tuple]:
    return sorted(
        (m.kind, m.symbol, m.client_order_id, m.alpaca_order_id, m.detail, str(m.actual_qty))
        for m in run.mismatches.all()
    )


def test_the_first_run_reads_in_full_the_next_ones_only_what_changed(account, gateway, store):
    first = run(gateway, store, dry_run=True)
    assert first.status == "succeeded", first.error
    assert read_of(first)["mode"] == "full"
    assert read_of(first)["reason"] == "no previous successful run of the account to read from"
    assert first.api_calls == 1 + 1 + 4  # positions, activities, four pages of orders
    assert OrdersReadBase.objects.get(account=first.account).run_id == first.pk

    quiet = run(gateway, store, dry_run=True)
    assert read_of(quiet)["mode"] == "incremental", read_of(quiet)
    # positions, activities, open orders, closed since the last run
    assert quiet.api_calls == 4
    assert findings(quiet) == findings(first)

    account.fill_order("rest-0")  # left the open list, filled (a FILL activity)
    account.cancel_order_manually("rest-1")  # left the open list, canceled (no activity)
    account.seed_order("MSFT", 1, status="filled", client_order_id="new-closed")
    changed = run(gateway, store, dry_run=True)
    assert read_of(changed)["mode"] == "incremental", read_of(changed)
    assert read_of(changed)["left_open_list"] == 2
    assert changed.api_calls == 5  # and the orders that left the open list, in one read
    full = run(gateway, store, dry_run=True, full=True)
    assert read_of(full)["reason"] == "a full read was asked for (reconcile --full)"
    assert findings(changed) == findings(full)
    kinds = {f[0] for f in findings(full)}
    assert "UNKNOWN_ORDER" in kinds


@pytest.mark.parametrize(
    "change",
    ["fill_ours", "cancel_ours", "cancel_stray", "fill_stray", "partial_ours", "nothing"],
)
def test_a_full_and_an_incremental_run_find_the_same_on_the_same_broker(
    account, gateway, store, change
):
    """The state changes while no run runs; then an incremental and a full run (both dry, so
    neither changes what the other sees) must report the same findings."""
    assert run(gateway, store, dry_run=True).status == "succeeded"
    if change == "fill_ours":
        account.fill_order("bo-s1-entry")
    elif change == "partial_ours":
        account.fill_order("bo-s1-entry", qty="1")
    elif change == "cancel_ours":
        account.cancel_order_manually("bo-s1-entry")
    elif change == "cancel_stray":
        account.cancel_order_manually("bo-stray-open")
    elif change == "fill_stray":
        account.fill_order("bo-stray-open")
    incremental = run(gateway, store, dry_run=True)
    assert read_of(incremental)["mode"] == "incremental", read_of(incremental)
    full = run(gateway, store, dry_run=True, full=True)
    assert read_of(full)["mode"] == "full"
    assert findings(incremental) == findings(full)
    assert incremental.api_calls <= 5 < full.api_calls == 6


def test_a_broker_order_that_changed_while_no_run_ran_is_repaired(account, gateway, store):
    assert run(gateway, store).status == "succeeded"
    account.fill_order("bo-s1-entry")
    repaired = run(gateway, store)
    assert read_of(repaired)["mode"] == "incremental", read_of(repaired)
    [drift] = repaired.mismatches.filter(kind="ORDER_STATUS_DRIFT")
    assert drift.client_order_id == "bo-s1-entry"
    assert drift.detail.endswith("Alpaca filled")
    after = run(gateway, store)
    assert read_of(after)["mode"] == "incremental"
    assert not after.mismatches.filter(kind="ORDER_STATUS_DRIFT").exists()


def test_an_attempt_whose_order_was_not_read_falls_back_to_the_full_read(account, gateway, store):
    assert run(gateway, store, dry_run=True).status == "succeeded"
    old = account.seed_order(
        "AAPL",
        1,
        status="filled",
        client_order_id="bo-late-entry",
        submitted_at=timezone.now() - timedelta(hours=3),
    )
    factories.order_attempt(
        client_order_id="bo-late-entry",
        signal_id="late",
        symbol="AAPL",
        status="open",
        broker_status="new",
        alpaca_order_id=old["id"],
        created_at=timezone.now() - timedelta(hours=3),
    )
    fell_back = run(gateway, store, dry_run=True)
    assert read_of(fell_back)["mode"] == "full"
    assert read_of(fell_back)["reason"].startswith("1 open attempt(s) whose order the incremental")
    assert "bo-late-entry" in read_of(fell_back)["reason"]
    finished = fell_back.events.get(kind="finished")
    assert finished.payload["summary"]["orders_read"]["mode"] == "full"
    [drift] = fell_back.mismatches.filter(kind="ORDER_STATUS_DRIFT")
    assert drift.client_order_id == "bo-late-entry"  # found, not ORDER_NOT_FOUND
    assert not fell_back.mismatches.filter(kind="ORDER_NOT_FOUND").exists()


def test_a_fill_whose_order_was_not_read_falls_back(account, gateway, store):
    assert run(gateway, store, dry_run=True).status == "succeeded"
    base = OrdersReadBase.objects.get()
    # The base forgets a resting order (as a base from a broken read would): its fill since the
    # cursor names an order no incremental read returned.
    orders = json.loads(base.orders_json)
    rest = next(o for o in orders["open"] if o[1] == "TSLA")
    orders["open"] = [o for o in orders["open"] if o[0] != rest[0]]
    base.orders_json = json.dumps(orders)
    base.save()
    account.fill_order(rest[0])
    fell_back = run(gateway, store, dry_run=True)
    assert read_of(fell_back)["mode"] == "full"
    assert "fill(s) since the activity cursor" in read_of(fell_back)["reason"]
    assert rest[0] in read_of(fell_back)["reason"]


def test_an_order_that_left_the_open_list_and_is_not_found_falls_back(account, gateway, store):
    assert run(gateway, store, dry_run=True).status == "succeeded"
    base = OrdersReadBase.objects.get()
    ghost = "00000000-0000-4000-8000-000000000001"
    orders = json.loads(base.orders_json)
    orders["open"].append([ghost, "NVDA", timezone.now().isoformat()])
    base.orders_json = json.dumps(orders)
    base.save()
    fell_back = run(gateway, store, dry_run=True)
    assert read_of(fell_back)["mode"] == "full"
    assert "were not found among the closed orders" in read_of(fell_back)["reason"]


def test_a_cursor_gap_falls_back(account, gateway, store):
    assert run(gateway, store, dry_run=True).status == "succeeded"
    OrdersReadBase.objects.update(activity_pk=10**9)
    fell_back = run(gateway, store, dry_run=True)
    assert read_of(fell_back)["mode"] == "full"
    assert read_of(fell_back)["reason"].startswith("cursor gap")


def test_the_daily_full_read(account, gateway, store, settings):
    assert run(gateway, store, dry_run=True).status == "succeeded"
    assert read_of(run(gateway, store, dry_run=True))["mode"] == "incremental"
    OrdersReadBase.objects.update(full_read_at=timezone.now() - timedelta(days=1, seconds=1))
    due = run(gateway, store, dry_run=True)
    assert read_of(due)["mode"] == "full"
    assert read_of(due)["reason"].startswith("the daily full read is due")
    assert read_of(run(gateway, store, dry_run=True))["mode"] == "incremental"
    settings.RECONCILE_FULL_EVERY_S = 0
    assert read_of(run(gateway, store, dry_run=True))["mode"] == "full"


def test_a_failed_run_leaves_the_base_to_the_last_success(account, gateway, store, monkeypatch):
    good = run(gateway, store, dry_run=True)
    monkeypatch.setattr(
        "reconciliation.services.diff", lambda data: (_ for _ in ()).throw(RuntimeError("boom"))
    )
    failed = run(gateway, store, dry_run=True)
    assert failed.status == "failed"
    assert OrdersReadBase.objects.get().run_id == good.pk


def test_reconcile_full_on_the_command_line(account, gateway, store, monkeypatch, capsys):
    monkeypatch.setattr("reconciliation.services.broker_gateway", lambda account=None: gateway)
    monkeypatch.setattr("reconciliation.services.get_signal_store", lambda: store)
    reports = []
    for options in ((), (), ("--full",), ("--full", "--all"), ("--all",)):
        call_command("reconcile", "--json", "--dry-run", *options)
        printed = json.loads(capsys.readouterr().out)
        reports.append(printed[0] if "--all" in options else printed)
    modes = [r.summary["orders_read"]["mode"] for r in ReconciliationRun.objects.order_by("pk")]
    assert modes == ["full", "incremental", "full", "full", "incremental"]
    assert [r["orders_read"]["mode"] for r in reports] == modes
    assert reports[2]["orders_read"]["reason"] == "a full read was asked for (reconcile --full)"


def test_a_longer_look_back_falls_back(account, gateway, store, settings):
    assert run(gateway, store, dry_run=True).status == "succeeded"
    settings.RECONCILE_ORDER_LOOKBACK_HOURS += 24
    fell_back = run(gateway, store, dry_run=True)
    assert read_of(fell_back)["mode"] == "full"
    assert "before the last run's" in read_of(fell_back)["reason"]


def test_an_activities_sync_that_did_not_run_falls_back(account, gateway, store):
    from brokerops.locks import single_flight

    assert run(gateway, store, dry_run=True).status == "succeeded"
    with single_flight("ledger-activities:default") as acquired:
        assert acquired
        fell_back = run(gateway, store, dry_run=True)
    assert read_of(fell_back)["mode"] == "full"
    assert read_of(fell_back)["reason"].startswith("the activities sync did not run")
    assert read_of(run(gateway, store, dry_run=True))["mode"] == "incremental"


def test_an_unrecorded_order_with_nul_bearing_text_is_carried(account, gateway, store):
    old = timezone.now() - timedelta(hours=2)
    stray = account.seed_order(
        "MSFT", 1, client_order_id="bo-nul-entry", status="canceled", submitted_at=old
    )
    account.set_order_fields(stray["id"], symbol="MS\x00FT", note="a\x00b")
    assert run(gateway, store, dry_run=True).status == "succeeded"
    incremental = run(gateway, store, dry_run=True)
    assert incremental.status == "succeeded", incremental.error
    assert read_of(incremental)["mode"] == "incremental"
    full = run(gateway, store, dry_run=True, full=True)
    assert findings(incremental) == findings(full)
    assert "bo-nul-entry" in {f[2] for f in findings(incremental)}
