"""The order attempt's lifecycle (orders/lifecycle.py): its sets, the broker's statuses, where an
attempt's end takes its signal, and `signals_move_record`, the one way a signal moves because of
an order (against the local signal store, no fake)."""

from dataclasses import replace
from decimal import Decimal

import pytest

from brokerops.intent.local import LocalSignalStore
from brokerops.intent.schema import SignalStatus
from brokerops.intent.store import Transition, TransitionOutcome
from orders import lifecycle
from orders.lifecycle import AttemptStatus, SetAside, SignalMove, signals_move_record
from orders.models import OrderAttempt, OrderEvent
from tests import factories


def test_every_status_is_open_or_final_never_both():
    assert frozenset(AttemptStatus) == lifecycle.OPEN | lifecycle.FINAL
    assert not lifecycle.OPEN & lifecycle.FINAL
    assert lifecycle.OPEN == lifecycle.NOT_SENT | lifecycle.AT_BROKER
    assert lifecycle.FINAL - {AttemptStatus.MISSING} == lifecycle.FINAL_AT_BROKER


def test_the_model_takes_its_statuses_from_the_lifecycle():
    assert OrderAttempt.Status is AttemptStatus
    assert OrderAttempt._meta.get_field("status").choices == AttemptStatus.choices


#: Every order status Alpaca documents (its "Orders at Alpaca" page, the order lifecycle; the same
#: list as alpaca-py's ``OrderStatus``), and the attempt status it means. Final: filled,
#: canceled, expired, rejected, and replaced (the order lives on as its replacement). Every other
#: status leaves something to happen: ``done_for_day`` and ``calculated`` resume or settle the next
#: day, ``pending_cancel`` and ``pending_replace`` may still fill, ``stopped`` guarantees a trade
#: still to come, ``suspended`` and ``held`` wait.
ALPACA_ORDER_STATUSES = {
    "new": "open",
    "partially_filled": "partially_filled",
    "filled": "filled",
    "done_for_day": "open",
    "canceled": "canceled",
    "expired": "expired",
    "replaced": "canceled",
    "pending_cancel": "open",
    "pending_replace": "open",
    "pending_review": "open",
    "accepted": "open",
    "pending_new": "open",
    "accepted_for_bidding": "open",
    "stopped": "open",
    "rejected": "rejected",
    "suspended": "open",
    "calculated": "open",
    "held": "open",
}


def test_the_table_names_every_status_of_alpacas_client():
    """A status alpaca-py learns (Alpaca added one) fails here until the table says what it
    means; an unknown one is read as still open meanwhile (the next test)."""
    from alpaca.trading.enums import OrderStatus

    assert {status.value for status in OrderStatus} == set(ALPACA_ORDER_STATUSES)


@pytest.mark.parametrize(
    ("broker_status", "attempt_status"),
    [
        *ALPACA_ORDER_STATUSES.items(),
        ("FILLED", "filled"),
        ("Pending_Cancel", "open"),
        ("a_status_alpaca_adds_later", "open"),
        ("", "open"),
    ],
)
def test_each_broker_status_means_one_attempt_status(broker_status, attempt_status):
    assert lifecycle.attempt_status_for(broker_status) == attempt_status
    final = attempt_status in lifecycle.FINAL_AT_BROKER
    assert lifecycle.is_terminal(broker_status) is final


def test_exactly_alpacas_five_final_statuses_are_terminal():
    terminal = {s for s in ALPACA_ORDER_STATUSES if lifecycle.is_terminal(s)}
    assert terminal == {"filled", "canceled", "expired", "rejected", "replaced"}
    assert terminal == lifecycle.TERMINAL_BROKER_STATUSES


@pytest.mark.parametrize("broker_status", sorted(ALPACA_ORDER_STATUSES))
def test_a_broker_status_means_an_attempt_status_the_model_knows(broker_status):
    """Never MISSING, CREATED or UNKNOWN: those are ours, never the broker's word."""
    status = lifecycle.attempt_status_for(broker_status)
    assert status in lifecycle.AT_BROKER | lifecycle.FINAL_AT_BROKER
    assert status in {value for value, _ in OrderAttempt.Status.choices}


@pytest.mark.parametrize(
    ("status", "filled_qty", "signal_status"),
    [
        ("filled", Decimal(10), SignalStatus.ACTIVE),
        ("canceled", None, SignalStatus.CANCELED),
        ("canceled", Decimal(4), SignalStatus.ACTIVE),
        ("expired", Decimal(0), SignalStatus.CANCELED),
        ("expired", Decimal(4), SignalStatus.ACTIVE),
        ("rejected", None, SignalStatus.REJECTED),
        ("missing", None, SignalStatus.CANCELED),
        *((status, None, None) for status in sorted(lifecycle.OPEN)),
    ],
)
def test_an_attempts_end_says_where_its_signal_goes(status, filled_qty, signal_status):
    assert lifecycle.signal_status_for(status=status, filled_qty=filled_qty) is signal_status


DOC = {"symbol": "AAPL", "side": "buy", "qty": "10", "order_type": "market", "status": "PENDING"}


@pytest.mark.django_db
class TestSignalsMoveRecord:
    @pytest.fixture
    def store(self):
        store = LocalSignalStore()
        store.put_documents([("sig1", DOC)])
        return store

    @pytest.fixture
    def attempt(self):
        return factories.order_attempt(client_order_id="bo-sig1-entry", signal_id="sig1")

    def _move(self, store, attempt, *, note=""):
        transition = Transition(
            signal_id="sig1",
            expected_status=SignalStatus.PENDING,
            new_status=SignalStatus.REJECTED,
            reason="a reason",
            expected_version=store.get("sig1").version,
        )
        return SignalMove(transition=transition, attempt=attempt, note=note)

    def _events(self, attempt):
        return list(
            attempt.events.filter(kind=OrderEvent.Kind.SIGNAL_TRANSITION).values_list(
                "status_from", "status_to", "message", "actor"
            )
        )

    def test_a_move_is_applied_and_recorded_on_its_attempt(self, store, attempt):
        ((_, result),) = signals_move_record(
            moves=[self._move(store, attempt, note="why")], store=store, actor="tester"
        )
        assert result.applied and store.get("sig1").status is SignalStatus.REJECTED
        assert self._events(attempt) == [
            ("PENDING", "REJECTED", "signal 'sig1': APPLIED; why", "tester")
        ]

    def test_a_rewritten_document_is_decided_again_on_its_new_version(self, store, attempt):
        move = self._move(store, attempt)
        store.put_documents([("sig1", {**DOC, "note": "rewritten"})])
        seen = []

        def on_changed(move, result):
            seen.append(result.outcome)
            return replace(
                move, transition=replace(move.transition, expected_version=result.current.version)
            )

        ((_, result),) = signals_move_record(
            moves=[move], store=store, actor="tester", on_changed=on_changed
        )
        assert seen == [TransitionOutcome.CHANGED] and result.applied
        assert [e[1] for e in self._events(attempt)] == ["REJECTED"]

    def test_without_a_new_decision_a_rewritten_document_is_left_and_recorded(self, store, attempt):
        move = self._move(store, attempt)
        store.put_documents([("sig1", {**DOC, "note": "rewritten"})])
        ((_, result),) = signals_move_record(moves=[move], store=store, actor="tester")
        assert result.outcome is TransitionOutcome.CHANGED
        assert store.get("sig1").status is SignalStatus.PENDING
        assert [e[1] for e in self._events(attempt)] == ["PENDING"]

    def test_a_move_set_aside_records_the_callers_events_instead(self, store, attempt):
        move = self._move(store, attempt)
        store.put_documents([("sig1", {**DOC, "note": "rewritten"})])
        conflict = OrderEvent(
            attempt=attempt, kind=OrderEvent.Kind.SIGNAL_TRANSITION, message="a conflict"
        )
        recorded = signals_move_record(
            moves=[move],
            store=store,
            actor="tester",
            on_changed=lambda move, result: SetAside(events=(conflict,)),
        )
        assert recorded == []
        assert [e[2] for e in self._events(attempt)] == ["a conflict"]

    def test_after_the_last_round_the_result_is_recorded_with_what_was_learned(
        self, store, attempt
    ):
        move = self._move(store, attempt, note="first")
        store.put_documents([("sig1", {**DOC, "note": "rewritten"})])

        def on_changed(move, result):  # rewritten again before every retry
            store.put_documents([("sig1", {**DOC, "note": move.note})])
            version = result.current.version
            transition = replace(move.transition, expected_version=version)
            return replace(move, transition=transition, note=f"after {move.note}")

        ((move, result),) = signals_move_record(
            moves=[move], store=store, actor="tester", on_changed=on_changed, rounds=2
        )
        assert result.outcome is TransitionOutcome.CHANGED and move.note == "after after first"
        (message,) = [e[2] for e in self._events(attempt)]
        assert message.startswith("signal 'sig1': CHANGED (") and message.endswith(
            "; after after first"
        )

    def test_a_move_without_an_attempt_records_no_event(self, store, attempt):
        move = replace(self._move(store, attempt), attempt=None)
        ((_, result),) = signals_move_record(moves=[move], store=store, actor="tester")
        assert result.applied and not OrderEvent.objects.exists()
