"""`orders.services.lookups`: the targeted look-up by client_order_id, the one way an absence is
confirmed. Only Alpaca's own 404 means "no such order"; anything else that fails raises. The
paper broker through the real alpaca-py client."""

from types import SimpleNamespace

import pytest

from brokerops.alpaca import BrokerUnavailable, RetryPolicy
from orders.services.lookups import order_or_none, orders_confirm_absent
from tests.integration.conftest import gateway_for

BY_CLIENT_ID = ("GET", "/v2/orders:by_client_order_id")


def attempts(*coids):
    return [SimpleNamespace(client_order_id=coid) for coid in coids]


@pytest.fixture
def gateway(broker):
    """No retries: a proxy's 404 is an outage, and waiting it out is not what is tested."""
    gw = gateway_for(broker, retry_policy=RetryPolicy(max_attempts=1))
    yield gw
    gw.close()


def test_an_order_is_found_by_its_client_order_id(broker, gateway):
    seeded = broker.seed_order("AAPL", 3, client_order_id="bo-l1-entry", status="new")
    found = order_or_none(gateway, "bo-l1-entry")
    assert (found.id, found.client_order_id, found.status) == (seeded["id"], "bo-l1-entry", "new")


def test_alpacas_404_means_no_such_order(gateway):
    assert order_or_none(gateway, "bo-never-entry") is None


def test_a_404_that_is_not_alpacas_is_an_outage_not_an_absence(broker, gateway):
    broker.inject_next("GET /v2/orders:by_client_order_id", "proxy_json")
    with pytest.raises(BrokerUnavailable, match="not Alpaca"):
        order_or_none(gateway, "bo-l2-entry")


def test_each_attempt_is_found_or_confirmed_missing_in_the_order_given(broker, gateway):
    for coid in ("bo-a-entry", "bo-c-entry"):
        broker.seed_order("AAPL", 1, client_order_id=coid, status="canceled")
    # More than the pool's threads (PARALLEL_LOOKUPS): the answers keep the order given.
    given = attempts("bo-a-entry", "bo-b-entry", "bo-c-entry", "bo-d-entry", "bo-e-entry")

    with gateway.count_calls(current_thread_only=True) as calls:
        check = orders_confirm_absent(given, gateway=gateway, calls=calls, budget=10)

    assert [(a.client_order_id, o.client_order_id) for a, o in check.found] == [
        ("bo-a-entry", "bo-a-entry"),
        ("bo-c-entry", "bo-c-entry"),
    ]
    assert check.missing == [given[1], given[3], given[4]]
    assert check.unconfirmed == []
    assert calls.total == 5  # the look-ups on the pool's threads are this caller's calls


def test_past_the_budget_attempts_are_left_unconfirmed_for_the_next_pass(broker, gateway):
    given = attempts("bo-1-entry", "bo-2-entry", "bo-3-entry")
    broker.reset_counters()

    check = orders_confirm_absent(given, gateway=gateway, calls=None, budget=2)

    assert check.missing == given[:2] and check.unconfirmed == given[2:]
    assert broker.counters()[BY_CLIENT_ID] == 2


def test_a_budget_of_nothing_asks_nothing(broker, gateway):
    given = attempts("bo-1-entry")
    broker.reset_counters()
    check = orders_confirm_absent(given, gateway=gateway, calls=None, budget=0)
    assert (check.found, check.missing, check.unconfirmed) == ([], [], given)
    assert BY_CLIENT_ID not in broker.counters()


def test_a_look_up_that_fails_fails_the_whole_check(broker, gateway):
    """Never a partial answer to act on: the caller fails or defers."""
    broker.inject_next("GET /v2/orders:by_client_order_id", "5xx", status=503)
    with pytest.raises(BrokerUnavailable):
        orders_confirm_absent(
            attempts("bo-1-entry", "bo-2-entry"), gateway=gateway, calls=None, budget=5
        )
