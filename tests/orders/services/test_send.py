"""`orders.services.send`: one claimed signal sent (docs/design.md section 5). Re-read before the
request (a withdrawn signal gets no order), the request recorded before it leaves, an earlier
request looked up before anything is sent again, and what each broker answer means. The paper
broker through the real alpaca-py client; the post-send work (`orders.services.finish`) is
left queued on the context, as the cycle leaves it until its batch."""

from decimal import Decimal

import pytest

from brokerops.alpaca import RetryPolicy
from brokerops.intent.local import LocalSignalStore
from brokerops.intent.schema import SignalStatus
from orders.models import OrderAttempt, OrderEvent
from orders.services.claim import attempt_claim
from orders.services.context import SignalReread, submit_context_open
from orders.services.events import order_event_record
from orders.services.outcomes import Outcome
from orders.services.send import signal_submit_one
from tests.integration.conftest import gateway_for
from tests.integration.test_watch_signals import delete_signal
from tests.orders.services.helpers import pending_doc

pytestmark = pytest.mark.django_db
Kind = OrderEvent.Kind
Status = OrderAttempt.Status
POST = ("POST", "/v2/orders")


@pytest.fixture
def gateway(broker):
    """No retries: each injected fault is the one answer the send sees."""
    broker.set_auto_fill(False)
    gw = gateway_for(broker, retry_policy=RetryPolicy(max_attempts=1))
    yield gw
    gw.close()


@pytest.fixture
def store():
    return LocalSignalStore()


def send(signal_id, *, gateway, store, scope, claimed=None):
    """`signal_submit_one` as the cycle of ``scope``'s account calls it: the context and the
    chunk's re-read."""
    signal = store.get(signal_id)
    cycle = open_cycle(signal, gateway=gateway, store=store, scope=scope)
    reread = SignalReread(store, [signal_id])
    return signal_submit_one(signal=signal, cycle=cycle, reread=reread, claimed=claimed), cycle


def open_cycle(signal, *, gateway, store, scope):
    """The context of a call of ``scope``'s account's cycle deciding on ``signal``."""
    return submit_context_open(
        [signal], gateway=gateway, store=store, actor="order-cycle", scope=scope
    )


def kinds(signal_id):
    attempt = OrderAttempt.objects.get(signal_id=signal_id)
    return list(attempt.events.order_by("created_at", "id").values_list("kind", flat=True))


def claim_is_free(signal_id, store, account):
    """The next claim of ``account`` takes the attempt at once (nothing was sent for it)."""
    signal = store.get(signal_id)
    return attempt_claim(signal=signal, coid=f"bo-{signal_id}-entry", account=account) is not None


def test_a_pending_signal_is_sent_once_and_its_post_send_work_queued(
    broker, gateway, store, default_scope
):
    store.put_documents([("s1", pending_doc(qty="3"))])

    outcome, cycle = send("s1", gateway=gateway, store=store, scope=default_scope)

    assert outcome.outcome is Outcome.SUBMITTED
    (order,) = broker.orders()
    assert (outcome.client_order_id, outcome.alpaca_order_id) == ("bo-s1-entry", order["id"])
    (accepted,) = cycle.accepted
    assert (accepted.signal.id, accepted.order.id, accepted.response) == ("s1", order["id"], True)
    assert accepted.outcome is outcome
    attempt = OrderAttempt.objects.get(signal_id="s1")
    assert attempt.status == Status.CREATED  # the answer is applied by the post-send work
    assert kinds("s1") == [Kind.CREATED, Kind.REQUEST_SENT]
    request = attempt.events.get(kind=Kind.REQUEST_SENT).payload["request"]
    assert (request["client_order_id"], request["qty"]) == ("bo-s1-entry", "3")
    assert attempt.request_payload == request
    assert store.get("s1").status is SignalStatus.PENDING


def test_a_signal_another_worker_holds_is_busy_and_nothing_is_sent(
    broker, gateway, store, default_scope, default_account
):
    store.put_documents([("s2", pending_doc())])
    # the other worker's claim
    attempt_claim(signal=store.get("s2"), coid="bo-s2-entry", account=default_account)

    outcome, _ = send("s2", gateway=gateway, store=store, scope=default_scope)

    assert outcome.outcome is Outcome.BUSY
    assert POST not in broker.counters()


@pytest.mark.parametrize("how", ["deleted", "canceled"])
def test_a_signal_withdrawn_since_the_read_gets_no_order(
    broker, gateway, store, how, default_scope, default_account
):
    store.put_documents([("s3", pending_doc())])
    signal = store.get("s3")
    cycle = open_cycle(signal, gateway=gateway, store=store, scope=default_scope)
    if how == "deleted":
        delete_signal(store, "s3")
    else:
        store.transition(
            signal_id="s3",
            expected_status=SignalStatus.PENDING,
            new_status=SignalStatus.CANCELED,
            reason="withdrawn",
        )

    outcome = signal_submit_one(signal=signal, cycle=cycle, reread=SignalReread(store, ["s3"]))

    assert outcome.outcome is Outcome.WITHDRAWN
    assert ("deleted" if how == "deleted" else "moved to CANCELED") in outcome.reason
    assert POST not in broker.counters() and cycle.accepted == []
    assert kinds("s3") == [Kind.CREATED, Kind.WITHDRAWN]
    assert OrderAttempt.objects.get(signal_id="s3").status == Status.CREATED
    if how == "canceled":
        assert store.get("s3").status is SignalStatus.CANCELED
        store.transition(
            signal_id="s3",
            expected_status=SignalStatus.CANCELED,
            new_status=SignalStatus.PENDING,
            reason="wanted after all",
        )
        assert claim_is_free("s3", store, default_account)


def test_a_document_rewritten_before_the_send_is_sent_as_it_is_now(
    broker, gateway, store, default_scope
):
    store.put_documents([("s4", pending_doc(qty="1"))])
    signal = store.get("s4")
    cycle = open_cycle(signal, gateway=gateway, store=store, scope=default_scope)
    store.put_documents([("s4", pending_doc(qty="4", order_type="limit", limit_price="100"))])

    outcome = signal_submit_one(signal=signal, cycle=cycle, reread=SignalReread(store, ["s4"]))

    assert outcome.outcome is Outcome.SUBMITTED
    assert [(o["qty"], o["type"]) for o in broker.orders()] == [("4", "limit")]
    attempt = OrderAttempt.objects.get(signal_id="s4")
    assert (attempt.qty, attempt.order_type) == (Decimal(4), "limit")  # what was sent


def test_a_document_rewritten_to_a_symbol_the_call_has_no_price_for_is_deferred(
    broker, gateway, store, settings, default_scope
):
    """The call read the prices of the symbols it was given: the new one's value cannot be
    checked against the max notional, so nothing is sent (the next cycle prices it)."""
    settings.ORDER_MAX_NOTIONAL = Decimal("100000")
    store.put_documents([("s4b", pending_doc(qty="1"))])
    signal = store.get("s4b")
    cycle = open_cycle(signal, gateway=gateway, store=store, scope=default_scope)
    store.put_documents([("s4b", pending_doc("MSFT", qty="4"))])

    outcome = signal_submit_one(signal=signal, cycle=cycle, reread=SignalReread(store, ["s4b"]))

    assert outcome.outcome is Outcome.DEFERRED and "no market price" in outcome.reason
    assert POST not in broker.counters()
    assert OrderAttempt.objects.get(signal_id="s4b").symbol == "MSFT"  # decided on the new one


def earlier_request(store, signal_id, account):
    """A claim of ``account`` whose request was recorded by a process that died before any
    answer."""
    attempt = attempt_claim(
        signal=store.get(signal_id), coid=f"bo-{signal_id}-entry", account=account
    )
    order_event_record(attempt=attempt, kind=Kind.REQUEST_SENT, message="POST /v2/orders")
    return attempt


def test_an_earlier_request_that_landed_is_adopted_not_sent_again(
    broker, gateway, store, default_scope, default_account
):
    store.put_documents([("s5", pending_doc(qty="2"))])
    claimed = earlier_request(store, "s5", default_account)
    landed = broker.seed_order("AAPL", 2, client_order_id="bo-s5-entry", status="new")

    outcome, cycle = send("s5", gateway=gateway, store=store, scope=default_scope, claimed=claimed)

    assert (outcome.outcome, outcome.alpaca_order_id) == (Outcome.ADOPTED, landed["id"])
    assert POST not in broker.counters()
    assert cycle.accepted[0].response is False  # no answer of ours to record
    lookup = OrderAttempt.objects.get(signal_id="s5").events.get(kind=Kind.LOOKUP)
    assert lookup.http_status == 200


def test_an_earlier_request_alpaca_never_got_is_sent_after_its_404(
    broker, gateway, store, default_scope, default_account
):
    store.put_documents([("s6", pending_doc())])
    claimed = earlier_request(store, "s6", default_account)

    outcome, _ = send("s6", gateway=gateway, store=store, scope=default_scope, claimed=claimed)

    assert outcome.outcome is Outcome.SUBMITTED
    assert broker.counters()[POST] == 1
    lookup = OrderAttempt.objects.get(signal_id="s6").events.get(kind=Kind.LOOKUP)
    assert lookup.http_status == 404


def test_an_earlier_request_that_cannot_be_looked_up_leaves_the_outcome_unknown(
    broker, gateway, store, default_scope, default_account
):
    store.put_documents([("s7", pending_doc())])
    claimed = earlier_request(store, "s7", default_account)
    broker.inject_next("GET /v2/orders:by_client_order_id", "5xx", status=503)

    outcome, _ = send("s7", gateway=gateway, store=store, scope=default_scope, claimed=claimed)

    assert outcome.outcome is Outcome.UNKNOWN and POST not in broker.counters()
    attempt = OrderAttempt.objects.get(signal_id="s7")
    assert (attempt.status, attempt.reason) == (Status.UNKNOWN, "look-up by client_order_id failed")
    assert kinds("s7")[-2:] == [Kind.ERROR, Kind.STATUS_CHANGED]


def test_no_answer_to_the_request_is_resolved_by_client_order_id(
    broker, gateway, store, default_scope
):
    store.put_documents([("s8", pending_doc())])
    broker.inject_next("POST /v2/orders", "reset_after")  # it landed; the answer was lost

    outcome, _ = send("s8", gateway=gateway, store=store, scope=default_scope)

    assert outcome.outcome is Outcome.ADOPTED
    assert broker.counters()[POST] == 1 and len(broker.orders()) == 1
    assert kinds("s8") == [Kind.CREATED, Kind.REQUEST_SENT, Kind.ERROR, Kind.LOOKUP]


def test_a_429_defers_the_signal_stops_the_call_and_frees_the_claim(
    broker, gateway, store, default_scope, default_account
):
    store.put_documents([("s9", pending_doc())])
    broker.inject_next("POST /v2/orders", "429", retry_after_s=1)

    outcome, cycle = send("s9", gateway=gateway, store=store, scope=default_scope)

    assert (outcome.outcome, outcome.halts_cycle) == (Outcome.DEFERRED, True)
    assert broker.orders() == [] and cycle.accepted == []
    error = OrderAttempt.objects.get(signal_id="s9").events.get(kind=Kind.ERROR)
    assert error.http_status == 429
    assert store.get("s9").status is SignalStatus.PENDING
    assert claim_is_free("s9", store, default_account)


def test_an_order_alpaca_refuses_rejects_the_attempt_and_the_signal(
    broker, gateway, store, default_scope
):
    broker.set_cash(10)
    store.put_documents([("s10", pending_doc(qty="50"))])

    outcome, _ = send("s10", gateway=gateway, store=store, scope=default_scope)

    assert outcome.outcome is Outcome.REJECTED
    assert outcome.reason.startswith("Alpaca rejected the order:")
    attempt = OrderAttempt.objects.get(signal_id="s10")
    assert (attempt.status, attempt.reason) == (Status.REJECTED, outcome.reason)
    assert kinds("s10")[-3:] == [Kind.ERROR, Kind.STATUS_CHANGED, Kind.SIGNAL_TRANSITION]
    assert store.get("s10").status is SignalStatus.REJECTED


def test_an_order_validation_refuses_is_never_sent(broker, gateway, store, default_scope):
    store.put_documents([("s11", {**pending_doc("NOSHRT"), "side": "sell"})])

    outcome, _ = send("s11", gateway=gateway, store=store, scope=default_scope)

    assert outcome.outcome is Outcome.REJECTED and "not shortable" in outcome.reason
    assert POST not in broker.counters()
    assert kinds("s11") == [Kind.CREATED, Kind.VALIDATION_FAILED, Kind.SIGNAL_TRANSITION]


def test_an_order_that_cannot_be_priced_is_deferred_with_the_reason(
    broker, gateway, store, settings, default_scope, default_account
):
    settings.ORDER_MAX_NOTIONAL = Decimal("100000")
    broker.set_market_data("AAPL", None)
    store.put_documents([("s12", pending_doc())])

    outcome, _ = send("s12", gateway=gateway, store=store, scope=default_scope)

    assert outcome.outcome is Outcome.DEFERRED and "no market price" in outcome.reason
    assert POST not in broker.counters()
    assert kinds("s12") == [Kind.CREATED, Kind.DEFERRED]
    assert claim_is_free("s12", store, default_account)
