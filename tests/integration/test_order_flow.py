"""Order submission and sync end to end: paper broker over loopback, real alpaca-py."""

import json
from collections import Counter
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.models import ChainHead
from audit.services import audit_verify
from brokerops.intent.schema import SignalStatus
from orders.models import OrderAttempt, OrderEvent
from orders.services import order_attempts_sync, orders_submit_pending
from tests.integration.conftest import gateway_for

pytestmark = pytest.mark.django_db(transaction=True)
POST = ("POST", "/v2/orders")


@pytest.fixture(autouse=True)
def _the_trail_verifies_after_each_flow():
    """Whatever a flow went through, its audit trail verifies: every chain, and every attempt
    agrees with its events (docs/design.md section 12)."""
    yield
    result = audit_verify(trigger="command", processes=1)
    assert result.ok, result.verification.first_problem


def pending(symbol="AAPL", qty="5", **extra):
    return {
        "symbol": symbol,
        "side": "buy",
        "qty": qty,
        "order_type": "market",
        "status": "PENDING",
        **extra,
    }


def settle_and_sync(broker, gateway, store):
    """What the beat does after a cycle: the broker fills (delayed, as Alpaca), the sync sees it."""
    assert broker.settle(timeout=5)
    return order_attempts_sync(gateway=gateway, store=store)


def attempt_of(signal_id):
    return OrderAttempt.objects.get(signal_id=signal_id)


def kinds_of(attempt):
    return list(attempt.events.order_by("created_at", "id").values_list("kind", flat=True))


def test_a_market_order_is_sent_once_fills_and_activates_its_signal(broker, gateway, store):
    store.put_documents([("s1", pending())])
    result = orders_submit_pending(gateway=gateway, store=store)
    assert result.counts()["submitted"] == 1
    attempt = attempt_of("s1")
    assert attempt.client_order_id == "bo-s1-entry"
    # Alpaca answers a market order before it fills: accepted, nothing filled, signal SUBMITTED.
    assert attempt.status == "open" and attempt.broker_status in ("pending_new", "accepted")
    assert not attempt.filled_qty
    assert kinds_of(attempt)[:3] == ["created", "request_sent", "response"]
    assert store.get("s1").status is SignalStatus.SUBMITTED
    settle_and_sync(broker, gateway, store)
    attempt.refresh_from_db()
    assert (attempt.status, attempt.broker_status, attempt.filled_qty) == (
        "filled",
        "filled",
        D("5"),
    )
    signal = store.get("s1")
    assert signal.status is SignalStatus.ACTIVE
    assert (signal.client_order_id, signal.alpaca_order_id) == (
        "bo-s1-entry",
        attempt.alpaca_order_id,
    )
    assert broker.counters()[POST] == 1
    assert broker.position("AAPL")["qty"] == "5"
    # A second cycle finds nothing to do and sends nothing.
    assert orders_submit_pending(gateway=gateway, store=store).outcomes == []
    assert broker.counters()[POST] == 1
    # The newest events are covered by a signed head as soon as the cycle or sync ends.
    newest = ChainHead.objects.filter(chain="order_events").order_by("-row_id").first()
    assert newest is not None and newest.row_id == OrderEvent.objects.latest("pk").pk


def test_invalid_orders_are_rejected_before_sending(broker, gateway, store):
    store.put_documents(
        [
            ("halted", pending("HALTD")),
            ("subpenny", pending("PENNY", order_type="limit", limit_price="0.12345")),
            ("short", {**pending("NOSHRT"), "side": "sell"}),
        ]
    )
    result = orders_submit_pending(gateway=gateway, store=store)
    assert Counter(o.outcome for o in result.outcomes) == {"rejected": 3}
    assert POST not in broker.counters()
    for sid, words in [
        ("halted", "not tradable"),
        ("subpenny", "sub-penny"),
        ("short", "not shortable"),
    ]:
        attempt = attempt_of(sid)
        assert attempt.status == "rejected" and words in attempt.reason
        assert kinds_of(attempt)[:2] == ["created", "validation_failed"]
        signal = store.get(sid)
        assert signal.status is SignalStatus.REJECTED and words in signal.status_reason


def test_a_broker_rejection_rejects_the_signal(broker, gateway, store):
    broker.set_cash(10)  # insufficient buying power
    store.put_documents([("s1", pending(qty="50"))])
    [outcome] = orders_submit_pending(gateway=gateway, store=store).outcomes
    assert outcome.outcome == "rejected"
    assert store.get("s1").status is SignalStatus.REJECTED
    assert broker.counters()[POST] == 1


@pytest.mark.parametrize("fault", ["reset_after", "5xx_after", "non_json_after"])
def test_an_order_that_landed_despite_an_error_is_adopted_not_resent(broker, gateway, store, fault):
    store.put_documents([("s1", pending())])
    broker.inject_next("POST /v2/orders", fault, status=504)
    [outcome] = orders_submit_pending(gateway=gateway, store=store).outcomes
    assert outcome.outcome == "adopted"
    assert broker.counters()[POST] == 1
    assert len(broker.orders()) == 1
    assert "lookup" in kinds_of(attempt_of("s1"))
    assert store.get("s1").status is SignalStatus.SUBMITTED
    settle_and_sync(broker, gateway, store)
    assert attempt_of("s1").status == "filled"
    assert store.get("s1").status is SignalStatus.ACTIVE


def test_an_order_that_never_landed_is_looked_up_then_sent_next_cycle(broker, gateway, store):
    store.put_documents([("s1", pending())])
    broker.inject_next("POST /v2/orders", "reset_before")
    [outcome] = orders_submit_pending(gateway=gateway, store=store).outcomes
    assert outcome.outcome == "unknown"
    assert attempt_of("s1").status == "unknown"
    assert store.get("s1").status is SignalStatus.PENDING
    [outcome] = orders_submit_pending(gateway=gateway, store=store).outcomes
    assert outcome.outcome == "submitted"
    assert broker.counters()[POST] == 2 and len(broker.orders()) == 1
    settle_and_sync(broker, gateway, store)
    assert store.get("s1").status is SignalStatus.ACTIVE


def test_a_stalled_submission_times_out_and_is_resolved_by_client_order_id(broker, store):
    gw = gateway_for(broker, timeout_s=0.5)
    store.put_documents([("s1", pending())])
    broker.inject_next("POST /v2/orders", "stall_after", stall_s=3)
    [outcome] = orders_submit_pending(gateway=gw, store=store).outcomes
    assert outcome.outcome == "adopted"
    assert len(broker.orders()) == 1


def test_a_duplicate_client_order_id_adopts_the_earlier_order(broker, gateway, store):
    store.put_documents([("s1", pending())])
    broker.seed_order("AAPL", 5, client_order_id="bo-s1-entry", status="new")  # sent earlier
    [outcome] = orders_submit_pending(gateway=gateway, store=store).outcomes
    assert outcome.outcome == "adopted"
    assert len(broker.orders()) == 1
    assert store.get("s1").status is SignalStatus.SUBMITTED


def test_a_429_defers_the_rest_of_the_cycle(broker, gateway, store):
    store.put_documents([("s1", pending()), ("s2", pending("MSFT"))])
    broker.inject_next("POST /v2/orders", "429", retry_after_s=1)
    result = orders_submit_pending(gateway=gateway, store=store)
    assert [o.outcome for o in result.outcomes] == ["deferred"]
    assert store.get("s1").status is SignalStatus.PENDING
    result = orders_submit_pending(gateway=gateway, store=store)
    assert Counter(o.outcome for o in result.outcomes) == {"submitted": 2}
    assert len(broker.orders()) == 2


def test_sync_records_fills_cancels_and_orders_gone(broker, gateway, store):
    broker.set_auto_fill(False)
    store.put_documents(
        [("fill", pending()), ("cancel", pending("MSFT")), ("gone", pending("TSLA"))]
    )
    orders_submit_pending(gateway=gateway, store=store)
    assert {store.get(s).status for s in ("fill", "cancel", "gone")} == {SignalStatus.SUBMITTED}
    broker.fill_order("bo-fill-entry")
    broker.cancel_order_manually("bo-cancel-entry")
    gone = attempt_of("gone")
    OrderAttempt.objects.filter(pk=gone.pk).update(
        client_order_id="bo-ghost-entry", created_at=timezone.now() - timedelta(hours=1)
    )
    broker.reset_counters()
    result = order_attempts_sync(gateway=gateway, store=store)
    assert result.counts()["missing"] == 1
    assert attempt_of("fill").status == "filled"
    assert store.get("fill").status is SignalStatus.ACTIVE
    assert attempt_of("cancel").status == "canceled"
    assert store.get("cancel").status is SignalStatus.CANCELED
    assert attempt_of("gone").status == "missing"
    assert store.get("gone").status is SignalStatus.CANCELED
    # One bulk list, one confirmation for the order that is gone.
    assert broker.counters() == {
        ("GET", "/v2/orders"): 1,
        ("GET", "/v2/orders:by_client_order_id"): 1,
    }


def test_sync_lists_orders_in_bulk_not_one_call_per_order(broker, gateway, store):
    broker.set_auto_fill(False)
    store.put_documents([(f"s{i}", pending(qty="1")) for i in range(60)])
    orders_submit_pending(gateway=gateway, store=store)
    broker.reset_counters()
    result = order_attempts_sync(gateway=gateway, store=store)
    assert result.attempts_seen == 60
    assert broker.counters() == {("GET", "/v2/orders"): 1}


def test_submit_and_sync_commands_print_json(broker, gateway, store, capsys, monkeypatch):
    for target in ("orders.services.submit", "orders.services.sync"):
        monkeypatch.setattr(f"{target}.broker_gateway", lambda account=None: gateway)
        monkeypatch.setattr(f"{target}.get_signal_store", lambda: store)
    store.put_documents([("s1", pending()), ("bad", pending("HALTD"))])
    call_command("submit_orders", "--json")
    report = json.loads(capsys.readouterr().out)
    by_signal = {s["signal_id"]: s for s in report["signals"]}
    assert by_signal["s1"]["client_order_id"] == "bo-s1-entry"
    assert by_signal["s1"]["outcome"] == "submitted"
    assert by_signal["bad"]["outcome"] == "rejected"
    assert "not tradable" in by_signal["bad"]["reason"]
    call_command("sync_orders", "--json")
    assert "attempts_seen" in json.loads(capsys.readouterr().out)


def test_credentials_never_reach_stored_payloads(broker, store, settings):
    settings.ALPACA_API_KEY = "test-key"
    settings.ALPACA_SECRET_KEY = "test-secret"
    gw = gateway_for(broker)
    store.put_documents([("s1", pending())])
    broker.inject_next("POST /v2/orders", "reset_after")
    orders_submit_pending(gateway=gw, store=store)
    for event in OrderEvent.objects.all():
        text = json.dumps(event.payload) + event.message
        assert "test-secret" not in text and "test-key" not in text


def test_shards_split_the_pending_signals_between_workers(broker, gateway, store):
    store.put_documents([(f"s{i}", pending(qty="1")) for i in range(40)])
    first = orders_submit_pending(gateway=gateway, store=store, shard=(0, 2))
    second = orders_submit_pending(gateway=gateway, store=store, shard=(1, 2))
    ids_first = {o.signal_id for o in first.outcomes}
    ids_second = {o.signal_id for o in second.outcomes}
    assert ids_first and ids_second and not ids_first & ids_second
    assert ids_first | ids_second == {f"s{i}" for i in range(40)}
    assert len(broker.orders()) == 40


def test_an_unreadable_asset_list_defers_instead_of_rejecting(broker, store):
    from brokerops.alpaca import RetryPolicy

    gw = gateway_for(broker, retry_policy=RetryPolicy(max_attempts=2, sleep=lambda s: None))
    store.put_documents([("s1", pending())])
    broker.inject_next("GET /v2/assets", "5xx", count=2, status=503)
    [outcome] = orders_submit_pending(gateway=gw, store=store).outcomes
    assert outcome.outcome == "deferred"
    assert store.get("s1").status is SignalStatus.PENDING
    assert POST not in broker.counters()
    [outcome] = orders_submit_pending(gateway=gw, store=store).outcomes
    assert outcome.outcome == "submitted"


def test_a_pending_signal_whose_order_is_gone_is_canceled_not_resent(broker, gateway, store):
    from tests import factories

    store.put_documents([("s1", pending())])
    factories.order_attempt(  # the order of this very document (5 AAPL): else a conflict
        client_order_id="bo-s1-entry", signal_id="s1", qty=D("5"), status="missing"
    )
    [outcome] = orders_submit_pending(gateway=gateway, store=store).outcomes
    assert outcome.outcome == "already"
    assert store.get("s1").status is SignalStatus.CANCELED
    assert POST not in broker.counters()
