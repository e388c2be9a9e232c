"""Reconciliation per account (docs/design.md section 16): each account's run reads that account's
signals, positions and orders only, under its own lock, and every row it writes carries the
account; one account's broker down or keys refused fails that account's run and no other's.

Two paper brokers, one per account, reached through the real alpaca-py client.
"""

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from brokerops.intent.schema import Signal, SignalStatus
from brokerops.locks import single_flight
from orders.models import OrderAttempt
from reconciliation import services
from reconciliation.models import Mismatch, ReconciliationRun
from reconciliation.reruns import reconciliation_request_rerun
from reconciliation.services import reconciliation_run, run_lock_name
from tests import factories
from tests.accounts.two_accounts import (  # noqa: F401 - two_accounts_fixture
    reload_accounts,
    signal,
    two_accounts_fixture,
)

pytestmark = pytest.mark.django_db(transaction=True)
HOUR_AGO = timedelta(hours=1)


def kinds(run: ReconciliationRun) -> list[tuple[str, str]]:
    return sorted((m.kind, m.outcome_action) for m in run.mismatches.select_related("outcome"))


def test_each_account_reconciles_its_own_signals_positions_and_orders(two_accounts):
    desk, client = two_accounts.brokers["desk"], two_accounts.brokers["client"]
    desk.seed_position("AAPL", 10)
    desk.seed_position("TSLA", 3)
    client.seed_position("MSFT", 5)
    two_accounts.store.put_documents(
        [
            ("s-desk", signal("AAPL", 10, account="desk")),
            ("s-unnamed", signal("TSLA", 3, account=None)),  # the default account's
            ("s-client", signal("MSFT", 5, account="client")),
            ("s-ghost", signal("NVDA", 1, account="ghost")),  # nobody's: reported once
        ]
    )
    # An order of the client's (its prefix) that nobody recorded: adopted into the client's
    # trail; the same prefix at the desk's broker is not the desk's (left alone).
    client.seed_order("MSFT", 1, client_order_id="cl-stray-entry", status="filled", filled_qty="1")
    desk.seed_order("AAPL", 1, client_order_id="cl-elsewhere-entry", status="filled")
    # An open attempt of the client's that its broker never saw.
    factories.order_attempt(
        account="client",
        client_order_id="cl-gone-entry",
        signal_id="gone",
        symbol="MSFT",
        status="open",
        broker_status="new",
        created_at=timezone.now() - HOUR_AGO,
    )

    desk_run = reconciliation_run(trigger="command", account="desk")
    client_run = reconciliation_run(trigger="command", account="client")

    assert (desk_run.status, client_run.status) == ("succeeded", "succeeded"), (
        desk_run.error,
        client_run.error,
    )
    assert (desk_run.account, client_run.account) == ("desk", "client")
    assert (desk_run.positions_seen, desk_run.signals_seen, desk_run.orders_seen) == (2, 3, 1)
    assert (client_run.positions_seen, client_run.signals_seen, client_run.orders_seen) == (1, 1, 1)
    assert kinds(desk_run) == [("INVALID_SIGNAL", "flagged")]
    ghost = desk_run.mismatches.get()
    assert ghost.signal_id == "s-ghost" and "account 'ghost' is not configured" in ghost.detail
    assert kinds(client_run) == [
        ("ORDER_NOT_FOUND", "attempt_marked_missing"),
        ("UNKNOWN_ORDER", "order_adopted"),
    ]
    for run in (desk_run, client_run):
        assert set(Mismatch.objects.filter(run=run).values_list("account", flat=True)) == {
            run.account
        }
    assert OrderAttempt.objects.get(client_order_id="cl-stray-entry").account == "client"
    assert not OrderAttempt.objects.filter(client_order_id="cl-elsewhere-entry").exists()


def test_reconcile_all_prints_one_object_per_account(two_accounts, capsys):
    two_accounts.brokers["client"].seed_position("MSFT", 5)
    two_accounts.store.put_documents([("s-client", signal("MSFT", 5, account="client"))])

    call_command("reconcile", "--all", "--json")

    reports = json.loads(capsys.readouterr().out)
    assert [(r["account"], r["status"]) for r in reports] == [
        ("desk", "succeeded"),
        ("client", "succeeded"),
    ]
    assert [r["positions_seen"] for r in reports] == [0, 1]
    assert {r["run_id"] for r in reports} == set(
        ReconciliationRun.objects.values_list("pk", flat=True)
    )


def test_reconcile_one_account_keeps_the_single_object_with_its_account(two_accounts, capsys):
    call_command("reconcile", "--account", "client", "--json")
    report = json.loads(capsys.readouterr().out)
    assert (report["account"], report["status"]) == ("client", "succeeded")
    assert ReconciliationRun.objects.get().account == "client"


def test_reconcile_without_an_account_runs_the_default_one(two_accounts, capsys):
    call_command("reconcile")
    assert "desk" in capsys.readouterr().out
    assert ReconciliationRun.objects.get().account == "desk"


def test_an_unknown_account_exits_2_naming_the_known_ones(two_accounts):
    with pytest.raises(CommandError) as raised:
        call_command("reconcile", "--account", "ghost")
    assert raised.value.returncode == 2
    assert "no account 'ghost' (accounts: desk, client)" in str(raised.value)
    assert not ReconciliationRun.objects.exists()


def test_account_and_all_are_exclusive(two_accounts):
    with pytest.raises(CommandError):
        call_command("reconcile", "--account", "desk", "--all")


def test_one_accounts_broker_down_fails_only_its_run(two_accounts, capsys):
    two_accounts.brokers["desk"].seed_position("AAPL", 10)
    two_accounts.store.put_documents([("s-desk", signal("AAPL", 10, account="desk"))])
    two_accounts.brokers["client"].stop()

    with pytest.raises(CommandError) as raised:
        call_command("reconcile", "--all", "--json")

    assert raised.value.returncode == 1
    assert "client" in str(raised.value) and "desk" not in str(raised.value)
    reports = {r["account"]: r for r in json.loads(capsys.readouterr().out)}
    assert reports["desk"]["status"] == "succeeded"
    assert reports["desk"]["positions_seen"] == 1
    assert reports["client"]["status"] == "failed"
    assert reports["client"]["error"].startswith("BrokerUnavailable")
    runs = dict(ReconciliationRun.objects.values_list("account", "status"))
    assert runs == {"desk": "succeeded", "client": "failed"}


def test_one_accounts_keys_refused_fails_only_its_run(two_accounts, settings, monkeypatch, capsys):
    # The client's account holds a secret its broker does not know: every call is a 401.
    monkeypatch.setenv("BO_TEST_SECRET_CLIENT", "a-stale-secret")
    reload_accounts(settings)
    two_accounts.brokers["desk"].seed_position("AAPL", 10)
    two_accounts.store.put_documents([("s-desk", signal("AAPL", 10, account="desk"))])

    with pytest.raises(CommandError) as raised:
        call_command("reconcile", "--all")

    assert raised.value.returncode == 1
    message = str(raised.value)
    assert "account 'client'" in message and "HTTP 401" in message
    # The hint names the account's own variables, not the single-account ALPACA_* ones.
    assert "BO_TEST_KEY_CLIENT" in message
    out = capsys.readouterr().out
    assert "desk" in out and "succeeded" in out
    runs = dict(ReconciliationRun.objects.values_list("account", "status"))
    assert runs == {"desk": "succeeded", "client": "failed"}
    client_run = ReconciliationRun.objects.get(account="client")
    assert client_run.error.startswith("BrokerRejected") and "401" in client_run.error


def test_keys_revoked_mid_run_fail_that_run_cleanly_and_repair_nothing(two_accounts, monkeypatch):
    """The client's keys work for the bulk reads and are revoked before the orphan's look-up:
    its run fails saying so, its orphan stays untouched; the desk's run is unaffected."""
    store = two_accounts.store
    store.put_documents(
        [
            ("s-client-orphan", signal("MSFT", 5, account="client")),
            ("s-desk-orphan", signal("AAPL", 10, account="desk")),
        ]
    )
    client_broker = two_accounts.brokers["client"]
    real_diff = services.diff

    def diff_then_revoke(data):
        if any(s.id == "s-client-orphan" for s in data.signals):
            client_broker.revoke_key("client-key")
        return real_diff(data)

    monkeypatch.setattr(services, "diff", diff_then_revoke)

    client_run = reconciliation_run(trigger="command", account="client")
    desk_run = reconciliation_run(trigger="command", account="desk")

    assert client_run.status == "failed"
    assert client_run.error.startswith("BrokerRejected") and "401" in client_run.error
    assert client_run.repairs_applied == 0
    assert store.get("s-client-orphan").status is SignalStatus.ACTIVE
    assert desk_run.status == "succeeded", desk_run.error
    assert kinds(desk_run) == [("ORPHAN_POSITION", "signal_closed_manual")]
    assert store.get("s-desk-orphan").status is SignalStatus.CLOSED_MANUAL


def test_a_signal_moved_to_another_account_after_its_order_is_recorded_not_repaired(
    two_accounts,
):
    """The desk sent the orders of two signals that now name the client: the orders and their
    attempts stay the desk's. The client's run records both moves and does not take the filled
    signal for an orphan of its own (it holds nothing: the desk does); the desk's run records the
    move of the open order's signal, and shows the filled one's holding as untracked."""
    desk = two_accounts.brokers["desk"]
    desk.set_auto_fill(False)
    desk.seed_position("AAPL", 10)
    filled = desk.seed_order(
        "AAPL", 10, client_order_id="dk-s-moved-entry", status="filled", filled_qty="10"
    )
    still_open = desk.seed_order("MSFT", 2, client_order_id="dk-s-open-entry", status="new")
    for signal_id, order, symbol, status, broker_status in (
        ("s-moved", filled, "AAPL", "filled", "filled"),
        ("s-open", still_open, "MSFT", "open", "new"),
    ):
        factories.order_attempt(
            account="desk",
            client_order_id=order["client_order_id"],
            signal_id=signal_id,
            symbol=symbol,
            status=status,
            broker_status=broker_status,
            alpaca_order_id=order["id"],
            created_at=timezone.now() - HOUR_AGO,
        )
    two_accounts.store.put_documents(
        [
            ("s-moved", signal("AAPL", 10, account="client")),
            ("s-open", signal("MSFT", 2, account="client", status="SUBMITTED")),
        ]
    )

    desk_run = reconciliation_run(trigger="command", account="desk")
    client_run = reconciliation_run(trigger="command", account="client")

    assert (desk_run.status, client_run.status) == ("succeeded", "succeeded")
    moved = "SIGNAL_ACCOUNT_MOVED"
    assert kinds(desk_run) == [(moved, "flagged"), ("UNTRACKED_POSITION", "flagged")]
    assert kinds(client_run) == [(moved, "flagged"), (moved, "flagged")]
    row = client_run.mismatches.get(signal_id="s-moved")
    assert (row.account, row.client_order_id, row.symbol) == ("client", "dk-s-moved-entry", "AAPL")
    assert "'client'" in row.detail and "'desk'" in row.detail
    sent = desk_run.mismatches.get(kind=moved)
    assert (sent.account, sent.signal_id, sent.client_order_id) == (
        "desk",
        "s-open",
        "dk-s-open-entry",
    )
    current = two_accounts.store.get("s-moved")
    assert isinstance(current, Signal) and current.status is SignalStatus.ACTIVE
    assert set(OrderAttempt.objects.values_list("account", flat=True)) == {"desk"}


def test_a_rerun_keeps_its_runs_account(two_accounts):
    two_accounts.brokers["client"].seed_position("MSFT", 5)
    first = reconciliation_run(trigger="command", account="client")
    user = factories.staff_user(group="operations")

    queued = reconciliation_request_rerun(run_id=first.pk, user_id=user.pk)  # runs eagerly

    rerun = ReconciliationRun.objects.get(pk=queued.pk)
    assert (rerun.account, rerun.status, rerun.rerun_of_id) == ("client", "succeeded", first.pk)
    assert rerun.positions_seen == 1


def test_the_accounts_locks_are_independent(two_accounts):
    with single_flight(run_lock_name("client")) as held:
        assert held
        desk_run = reconciliation_run(trigger="command", account="desk")
        client_run = reconciliation_run(trigger="command", account="client")
    assert (desk_run.account, desk_run.status) == ("desk", "succeeded")
    assert (client_run.account, client_run.status) == ("client", "skipped")
    assert run_lock_name("desk") == "reconciliation:desk"


def test_an_abandoned_run_is_closed_by_its_own_accounts_next_run(two_accounts):
    stale = factories.reconciliation_run(
        account="client", status="running", started_at=timezone.now() - HOUR_AGO
    )
    reconciliation_run(trigger="command", account="desk")
    stale.refresh_from_db()
    assert stale.status == "running"  # the client's lock may be held by a live worker
    reconciliation_run(trigger="command", account="client")
    stale.refresh_from_db()
    assert stale.status == "failed" and stale.error.startswith("abandoned")
