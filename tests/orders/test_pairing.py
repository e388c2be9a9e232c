"""`orders.pairing`: our open attempts against the broker's order list (pure: no Django, no I/O).
Which attempts the list shows, which are absent long enough to be confirmed by a look-up, which
are too young to judge, and where the bulk read must start."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from orders.pairing import (
    MISSING_REASON,
    READ_SLACK,
    Pairing,
    orders_read_after,
    pair_attempts_with_orders,
)

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class Attempt:
    client_order_id: str
    created_at: datetime


@dataclass(frozen=True)
class Order:
    client_order_id: str
    status: str = "new"


def attempt(coid: str, age: timedelta) -> Attempt:
    return Attempt(coid, NOW - age)


def test_an_attempt_the_list_shows_is_paired_with_its_order_whatever_its_age():
    young, old = attempt("bo-a-entry", timedelta(seconds=1)), attempt("bo-b-entry", timedelta(1))
    orders = [Order("bo-b-entry", "filled"), Order("bo-a-entry")]

    pairing = pair_attempts_with_orders([young, old], orders, now=NOW, grace=GRACE)

    assert pairing.paired == [(young, orders[1]), (old, orders[0])]
    assert pairing.absent == [] and pairing.too_young == []


def test_an_attempt_missing_from_the_list_is_absent_once_past_the_grace_and_too_young_before():
    too_young = attempt("bo-young-entry", GRACE - timedelta(microseconds=1))
    at_grace = attempt("bo-edge-entry", GRACE)  # exactly the grace: old enough to look up
    old = attempt("bo-old-entry", timedelta(hours=2))

    pairing = pair_attempts_with_orders([too_young, at_grace, old], [], now=NOW, grace=GRACE)

    assert pairing.too_young == [too_young]
    assert pairing.absent == [at_grace, old]
    assert pairing.paired == []


def test_each_attempt_lands_in_exactly_one_group_in_the_order_given():
    attempts = [
        attempt("bo-1-entry", timedelta(hours=1)),
        attempt("bo-2-entry", timedelta(seconds=2)),
        attempt("bo-3-entry", timedelta(hours=3)),
        attempt("bo-4-entry", timedelta(seconds=3)),
    ]
    orders = [Order("bo-3-entry"), Order("bo-4-entry"), Order("someone-else")]

    pairing = pair_attempts_with_orders(attempts, orders, now=NOW, grace=GRACE)

    assert [a for a, _ in pairing.paired] == [attempts[2], attempts[3]]
    assert pairing.absent == [attempts[0]]
    assert pairing.too_young == [attempts[1]]


def test_a_map_by_client_order_id_is_taken_as_it_is():
    """A caller holding the orders by client_order_id already (reconciliation) passes the map:
    its keys decide, not the orders' own field."""
    listed = Order("bo-x-entry")
    by_key = {"bo-a-entry": listed}

    pairing = pair_attempts_with_orders(
        [attempt("bo-a-entry", timedelta(hours=1))], by_key, now=NOW, grace=GRACE
    )

    assert pairing.paired == [(attempt("bo-a-entry", timedelta(hours=1)), listed)]


def test_a_list_naming_one_client_order_id_twice_pairs_the_last():
    first, last = Order("bo-a-entry", "canceled"), Order("bo-a-entry", "replaced")
    pairing = pair_attempts_with_orders(
        [attempt("bo-a-entry", timedelta(hours=1))], [first, last], now=NOW, grace=GRACE
    )
    assert [o for _, o in pairing.paired] == [last]


def test_no_attempts_give_an_empty_pairing():
    assert pair_attempts_with_orders([], [Order("bo-a-entry")], now=NOW, grace=GRACE) == Pairing()


def test_the_bulk_read_starts_before_the_oldest_attempt_by_the_slack():
    oldest = NOW - timedelta(hours=3)
    assert orders_read_after(oldest_attempt_at=oldest, now=NOW) == oldest - READ_SLACK
    assert timedelta(0) < READ_SLACK


def test_the_bulk_read_takes_the_earlier_of_the_look_back_and_the_oldest_attempt():
    recent = NOW - timedelta(minutes=10)
    day = timedelta(days=1)
    assert orders_read_after(oldest_attempt_at=recent, now=NOW, lookback=day) == NOW - day
    ancient = NOW - timedelta(days=7)
    assert orders_read_after(oldest_attempt_at=ancient, now=NOW, lookback=day) == (
        ancient - READ_SLACK
    )


def test_the_bulk_read_without_an_attempt_starts_at_the_look_back():
    assert orders_read_after(oldest_attempt_at=None, now=NOW, lookback=timedelta(hours=6)) == (
        NOW - timedelta(hours=6)
    )


def test_the_bulk_read_needs_a_look_back_or_an_attempt():
    with pytest.raises(ValueError, match="look-back or an attempt"):
        orders_read_after(oldest_attempt_at=None, now=NOW)


def test_a_confirmed_absence_says_alpaca_answered_404_by_client_order_id():
    assert "404" in MISSING_REASON and "client_order_id" in MISSING_REASON
