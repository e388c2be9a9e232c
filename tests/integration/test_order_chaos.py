"""Chaos: 200 submissions through resets, timeouts, 429s and 5xx; exactly-once still holds."""

from collections import Counter

import pytest

from brokerops.alpaca import BrokerError, InProcessLimiter, RetryPolicy
from brokerops.intent.schema import SignalStatus
from brokerops.sim.faults import chaos_faults
from orders.models import OrderAttempt
from orders.services import order_attempts_sync, orders_submit_pending
from tests.integration.conftest import gateway_for

pytestmark = pytest.mark.django_db(transaction=True)
SIGNALS = 200


def test_chaos_gives_no_duplicates_no_lost_attempts_and_agreeing_statuses(broker, store, settings):
    settings.ORDER_CLAIM_TIMEOUT_S = 0  # every cycle may take over what the last left
    settings.ORDER_GRACE_S = 0
    symbols = ["AAPL", "MSFT", "SPY", "TSLA"]
    store.put_documents(
        [
            (
                f"c{i}",
                {
                    "symbol": symbols[i % 4],
                    "side": "buy",
                    "qty": "1",
                    "order_type": "market",
                    "status": "PENDING",
                },
            )
            for i in range(SIGNALS)
        ]
    )
    broker.set_faults(chaos_faults(7))
    # The strict broker's rate limit stays on; its budget is scaled to a test's minute, and the
    # gateway paces itself under it as production does (its own limiter, below the broker's).
    broker.set_rate_limit(3000)
    gw = gateway_for(
        broker,
        limiter=InProcessLimiter(rate_per_min=2700),
        timeout_s=0.3,
        retry_policy=RetryPolicy(
            max_attempts=3, base_s=0.0, max_backoff_s=0.0, sleep=lambda s: None
        ),
    )
    cycles = failed_cycles = 0
    while cycles < 60:
        cycles += 1
        try:
            orders_submit_pending(gateway=gw, store=store, limit=SIGNALS)
            order_attempts_sync(gateway=gw, store=store)
        except BrokerError:
            failed_cycles += 1  # a bulk read failed after its retries: nothing was sent
        if (
            not store.read(statuses=[SignalStatus.PENDING]).signals
            and not OrderAttempt.objects.filter(status__in=["created", "unknown"]).exists()
        ):
            break
    broker.set_faults(None)
    assert broker.settle(timeout=10)  # fills are delayed, as at Alpaca
    order_attempts_sync(gateway=gw, store=store)
    print(f"chaos: {cycles} cycles ({failed_cycles} failed a bulk read)")

    fault_kinds = Counter(str(event.kind) for event in broker.fault_log())
    print(f"chaos faults injected: {dict(fault_kinds)}")
    assert sum(fault_kinds.values()) > 30, fault_kinds  # the chaos really happened
    orders = broker.orders()
    per_client_id = Counter(o["client_order_id"] for o in orders)
    assert max(per_client_id.values()) == 1, "duplicate order at the broker"
    assert len(orders) == SIGNALS
    attempts = {a.client_order_id: a for a in OrderAttempt.objects.all()}
    assert len(attempts) == SIGNALS  # one attempt per signal, none lost
    for order in orders:
        attempt = attempts[order["client_order_id"]]
        assert attempt.broker_status == order["status"], attempt.client_order_id
        assert attempt.alpaca_order_id == order["id"]
    assert {store.get(f"c{i}").status for i in range(SIGNALS)} == {SignalStatus.ACTIVE}
