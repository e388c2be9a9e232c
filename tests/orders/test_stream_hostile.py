"""Hostile trade_updates events: each bad one refused or failed on its own, never losing the
good events of its batch; broker prices stored exactly (docs/design.md sections 6 and 14)."""

import dataclasses
from decimal import Decimal

import pytest

from brokerops.alpaca.errors import BrokerMalformedResponse
from brokerops.alpaca.stream import parse_trade_update
from orders.models import OrderAttempt, OrderExecution
from orders.services import stream as stream_service
from orders.services.stream import StreamStats
from tests import factories
from tests.orders.services.test_stream import _submitted_store, order

FINE = "19660.5738784516887649"


def fill(execution_id="e-1", coid="bo-sig1-entry", price="187.5", **order_fields):
    return {
        "event": "fill",
        "execution_id": execution_id,
        "order": order(coid=coid, **order_fields),
        "price": price,
        "qty": "10",
        "position_qty": "10",
        "timestamp": "2026-11-25T10:00:00.100000123Z",
    }


def test_an_execution_id_longer_than_its_column_is_refused_on_its_own():
    assert parse_trade_update(fill(execution_id="e" * 64)).execution_id == "e" * 64
    with pytest.raises(BrokerMalformedResponse, match="execution_id"):
        parse_trade_update(fill(execution_id="e" * 65))


@pytest.mark.django_db(transaction=True)
def test_one_failing_event_never_loses_the_others_in_its_batch(monkeypatch):
    store = _submitted_store()
    factories.order_attempt(client_order_id="bo-sig1-entry", signal_id="sig1", status="open")
    factories.order_attempt(client_order_id="bo-sig2-entry", signal_id="sig2", status="open")
    good = parse_trade_update(fill(execution_id="good"))
    bad = parse_trade_update(fill(execution_id="bad", coid="bo-sig2-entry"))
    real = stream_service._execution

    def execution(update, attempt):
        if update.execution_id == "bad":
            raise ValueError("a bug with this one event")
        return real(update, attempt)

    monkeypatch.setattr(stream_service, "_execution", execution)
    stats = StreamStats()
    seen = []
    stream_service._apply(
        [bad, good], store=store, stats=stats, on_event=lambda u, o: seen.append(u.execution_id)
    )
    assert list(OrderExecution.objects.values_list("execution_id", flat=True)) == ["good"]
    assert OrderAttempt.objects.get(client_order_id="bo-sig1-entry").status == "filled"
    assert (stats.failed, seen) == (1, ["good"])


@pytest.mark.django_db(transaction=True)
def test_an_over_long_execution_id_that_reaches_the_database_fails_alone():
    """Past the parser (a TradeUpdate built by hand): PostgreSQL refuses the 65 characters;
    the valid fill beside it is stored all the same."""
    store = _submitted_store()
    factories.order_attempt(client_order_id="bo-sig1-entry", signal_id="sig1", status="open")
    factories.order_attempt(client_order_id="bo-sig2-entry", signal_id="sig2", status="open")
    good = parse_trade_update(fill(execution_id="good"))
    bad = dataclasses.replace(
        parse_trade_update(fill(execution_id="x", coid="bo-sig2-entry")), execution_id="b" * 65
    )
    stats = StreamStats()
    stream_service._apply([bad, good], store=store, stats=stats, on_event=None)
    assert OrderExecution.objects.filter(execution_id="good").exists()


@pytest.mark.django_db
def test_a_fill_at_a_price_with_sixteen_decimals_is_stored_exactly():
    store = _submitted_store()
    factories.order_attempt(client_order_id="bo-sig1-entry", signal_id="sig1", status="open")
    update = parse_trade_update(fill(price=FINE, filled_avg_price=FINE))
    stream_service.trade_update_apply(update=update, store=store)
    assert OrderExecution.objects.get().price == Decimal(FINE)
    attempt = OrderAttempt.objects.get()
    assert attempt.filled_avg_price == Decimal(FINE)
    assert OrderAttempt.objects.filter(filled_avg_price=Decimal(FINE)).count() == 1
