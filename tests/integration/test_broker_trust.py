"""What Alpaca really sends is read, and only Alpaca says "absent" (issue 20; docs/design.md
section 6): the paper broker over loopback, the real alpaca-py client, both signal stores."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone

from brokerops.alpaca import BrokerUnavailable, RetryPolicy
from brokerops.intent.schema import SignalStatus
from orders.models import OrderAttempt
from orders.services.sync import order_attempts_sync
from reconciliation.models import Mismatch, ReconciliationRun
from reconciliation.services import reconciliation_run
from tests import factories
from tests.integration.conftest import gateway_for
from tests.integration.test_reconciliation_run import active

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gateway(broker):
    """No retries: a proxy's 404 is an outage, and waiting it out is not what is tested."""
    gw = gateway_for(broker, retry_policy=RetryPolicy(max_attempts=1))
    yield gw
    gw.close()


FINE = "19660.5738784516887649"  # a crypto position's average entry price: 16 decimals
CONFIRM_POSITION = "GET /v2/positions/{symbol_or_asset_id}"
CONFIRM_ORDER = "GET /v2/orders:by_client_order_id"


def run_once(gateway, store) -> ReconciliationRun:
    return reconciliation_run(trigger="command", gateway=gateway, store=store)


def test_a_crypto_position_at_a_sixteen_decimal_average_price_reconciles(broker, gateway, store):
    broker.seed_position("BTC/USD", D("0.5"), avg_entry_price=D(FINE))
    store.put_documents([("s-btc", active("BTC/USD", "0.5"))])
    assert gateway.list_positions()[0].avg_entry_price == D(FINE)

    run = run_once(gateway, store)

    assert run.status == ReconciliationRun.Status.SUCCEEDED, run.error
    assert run.positions_seen == 1 and run.mismatches.count() == 0


def test_a_crypto_fill_with_many_digits_is_read_by_every_run(broker, gateway, store):
    """The paper broker's own crypto buy: the fee in the coin makes its average entry price a
    figure with 16 decimals, which the next run reads (and flags the fee-sized difference)."""
    broker.seed_order("BTC/USD", D("0.5"), client_order_id="manual-btc", status="new")
    broker.fill_order("manual-btc")
    (position,) = gateway.list_positions()
    assert position.avg_entry_price.as_tuple().exponent <= -10

    run = run_once(gateway, store)
    assert run.status == ReconciliationRun.Status.SUCCEEDED, run.error


def test_a_proxys_json_404_on_the_confirming_look_up_closes_nothing(broker, gateway, store):
    store.put_documents([("orphan", active("MSFT", 3))])
    broker.inject_next(CONFIRM_POSITION, "proxy_json", count=10)
    run = run_once(gateway, store)

    assert run.status == ReconciliationRun.Status.FAILED
    assert "404" in run.error and "not Alpaca" in run.error
    assert store.get("orphan").status is SignalStatus.ACTIVE
    assert not run.mismatches.ended_as(Mismatch.Action.SIGNAL_CLOSED_MANUAL).exists()


def _submitted(store, signal_id="gone"):
    store.put_documents([(signal_id, {**active("AAPL", 1), "status": "SUBMITTED"})])
    return factories.order_attempt(
        client_order_id=f"bo-{signal_id}-entry",
        signal_id=signal_id,
        symbol="AAPL",
        status="open",
        broker_status="new",
        created_at=timezone.now() - timedelta(hours=1),
    )


def test_a_proxys_json_404_marks_no_attempt_missing_in_reconciliation(broker, gateway, store):
    attempt = _submitted(store)
    broker.inject_next(CONFIRM_ORDER, "proxy_json", count=10)
    run = run_once(gateway, store)

    attempt.refresh_from_db()
    assert attempt.status == "open"
    assert store.get("gone").status is SignalStatus.SUBMITTED
    assert not run.mismatches.ended_as(Mismatch.Action.ATTEMPT_MARKED_MISSING).exists()


def test_a_proxys_json_404_marks_no_attempt_missing_in_order_sync(broker, gateway, store):
    attempt = _submitted(store)
    broker.inject_next(CONFIRM_ORDER, "proxy_json", count=10)
    with pytest.raises(BrokerUnavailable, match="not Alpaca"):  # no answer: nothing decided
        order_attempts_sync(gateway=gateway, store=store)

    attempt.refresh_from_db()
    assert attempt.status == "open"
    assert store.get("gone").status is SignalStatus.SUBMITTED
    assert not OrderAttempt.objects.filter(status="missing").exists()


def test_alpacas_own_404_still_marks_the_attempt_missing(broker, gateway, store):
    attempt = _submitted(store)
    order_attempts_sync(gateway=gateway, store=store)
    attempt.refresh_from_db()
    assert attempt.status == "missing"
