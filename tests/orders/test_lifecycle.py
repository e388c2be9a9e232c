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


@pytest.mark.parametrize(
    ("broker_status", "attempt_status"),
    [
        ("new", "open"),
        ("accepted", "open"),
        ("pending_new", "open"),
        ("partially_filled", "partially_filled"),
        ("filled", "filled"),
        ("FILLED", "filled"),
        ("canceled", "canceled"),
        ("expired", "expired"),
        ("rejected", "rejected"),
        ("replaced", "canceled"),
        ("a_status_alpaca_adds_later", "open"),
    ],
)
def test_each_broker_status_means_one_attempt_status(broker_status, attempt_status):
    assert lifecycle.attempt_status_for(broker_status) == attempt_status
    final = attempt_status in lifecycle.FINAL_AT_BROKER
    assert lifecycle.is_terminal(broker_status) is final


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
