"""The order path against hostile input (issue 20 point 4): risk limits price an order at what it
can cost; a decision holds only for the document it was made on; an order for a signal withdrawn
meanwhile is undone. Paper broker over loopback, the real alpaca-py client, both stores.
"""

import json
from collections import Counter
from decimal import Decimal as D

import pytest
from django.core.management import call_command

from brokerops.intent.schema import SignalStatus
from orders.models import OrderAttempt, OrderEvent
from orders.services import order_attempts_sync, orders_submit_pending
from orders.services.submit import order_signals_submit
from tests.integration.test_order_flow import pending
from tests.integration.test_watch_signals import Watcher, delete_signal
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
POST = ("POST", "/v2/orders")
DELETE = ("DELETE", "/v2/orders/{id}")
Kind = OrderEvent.Kind


def by_signal(result):
    return {o.signal_id: o for o in result.outcomes}


def messages(attempt, kind=None):
    events = attempt.events.order_by("created_at", "id")
    if kind is not None:
        events = events.filter(kind=kind)
    return list(events.values_list("message", flat=True))


# --- risk limits price an order at what it can cost ----------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        dict(order_type="stop", stop_price="1"),
        dict(order_type="limit", limit_price="0.01", side="sell"),
        dict(order_type="stop_limit", stop_price="1", limit_price="1"),
    ],
    ids=["stop-buy-at-1", "sell-limit-at-0.01", "stop-limit-buy-at-1"],
)
def test_an_order_naming_a_low_price_is_valued_at_the_market_and_refused(
    broker, gateway, store, settings, capsys, monkeypatch, fields
):
    """The hostile pass: 10,000 AAPL with a $1 stop was valued at $10,000, sent, and filled at
    the market ($1.9M). Through the operator's command, as it was found."""
    for target in ("orders.services.submit", "orders.services.sync"):
        monkeypatch.setattr(f"{target}.broker_gateway", lambda account=None: gateway)
        monkeypatch.setattr(f"{target}.get_signal_store", lambda: store)
    settings.ORDER_MAX_NOTIONAL = D("100000")
    broker.set_price("AAPL", D("190"))
    store.put_documents([("whale", pending(qty="10000", **fields))])

    call_command("submit_orders", "--json")

    [row] = json.loads(capsys.readouterr().out)["signals"]
    assert row["outcome"] == "rejected", row
    assert "order value 1900000 exceeds the max notional per order 100000" in row["reason"]
    assert store.get("whale").status is SignalStatus.REJECTED
    assert POST not in broker.counters()


def test_an_order_naming_a_price_is_deferred_without_a_market_price(
    broker, gateway, store, settings
):
    settings.ORDER_MAX_NOTIONAL = D("100000")
    broker.set_market_data("AAPL", None)
    store.put_documents(
        [
            ("blind-stop", pending(qty="10", order_type="stop", stop_price="1")),
            ("by-notional", pending(qty=None, notional="500")),
        ]
    )
    got = by_signal(orders_submit_pending(gateway=gateway, store=store))

    assert got["blind-stop"].outcome == "deferred" and "no market price" in got["blind-stop"].reason
    assert store.get("blind-stop").status is SignalStatus.PENDING
    assert got["by-notional"].outcome == "submitted"  # its value is its notional: no price needed
    assert broker.counters()[POST] == 1


# --- a decision holds only for the document it was made on -------------------------------------


def rewrite_after_send(broker, gateway, store, signal_id, document):
    """The writer rewrites the document right after the broker accepted its order (before the
    signal's transition): the window the hostile pass hit."""
    submit = gateway.submit_order

    def then_rewrite(request):
        order = submit(request)
        if request.client_order_id == f"bo-{signal_id}-entry":
            store.put_documents([(signal_id, document)])
        return order

    gateway.submit_order = then_rewrite


def test_a_document_rewritten_after_its_order_was_sent_is_a_conflict_not_submitted(
    broker, gateway, store
):
    """AAPL 1 sent, then rewritten as MSFT 100: never SUBMITTED holding the AAPL order."""
    broker.set_auto_fill(False)  # the order rests at the broker: it can still be undone
    store.put_documents([("swap", pending("AAPL", qty="1"))])
    rewrite_after_send(broker, gateway, store, "swap", pending("MSFT", qty="100"))

    [outcome] = orders_submit_pending(gateway=gateway, store=store).outcomes

    signal = store.get("swap")
    assert (signal.symbol, signal.qty) == ("MSFT", D("100"))  # the writer's document stands
    assert signal.status is SignalStatus.REJECTED, signal.status
    assert "conflict" in signal.status_reason and "AAPL" in signal.status_reason
    assert outcome.outcome == "conflict", outcome
    # The AAPL order nobody asks for any more is canceled; no MSFT order is sent.
    assert [o["symbol"] for o in broker.orders()] == ["AAPL"]
    assert broker.order("bo-swap-entry")["status"] == "canceled"
    attempt = OrderAttempt.objects.get(signal_id="swap")
    assert attempt.status == OrderAttempt.Status.CANCELED
    assert any("conflict" in m for m in messages(attempt, Kind.SIGNAL_TRANSITION))
    assert any("DELETE" in m for m in messages(attempt, Kind.REQUEST_SENT))
    # Nothing more happens on the next cycle or sync.
    assert broker.settle(timeout=5)
    order_attempts_sync(gateway=gateway, store=store)
    assert orders_submit_pending(gateway=gateway, store=store).outcomes == []
    assert store.get("swap").status is SignalStatus.REJECTED
    assert broker.counters()[POST] == 1


def test_a_document_changed_elsewhere_after_the_send_is_still_submitted(broker, gateway, store):
    """A change that leaves the order as it was (a note) is no conflict: decided again on the
    fresh document, the signal moves to SUBMITTED."""
    store.put_documents([("noted", pending("AAPL", qty="1"))])
    rewrite_after_send(broker, gateway, store, "noted", pending("AAPL", qty="1", note="hello"))

    [outcome] = orders_submit_pending(gateway=gateway, store=store).outcomes

    assert outcome.outcome == "submitted"
    signal = store.get("noted")
    assert signal.status is SignalStatus.SUBMITTED
    assert broker.order("bo-noted-entry")["status"] != "canceled"


def test_a_reused_signal_id_is_a_recorded_conflict_never_the_old_order(broker, gateway, store):
    """`reuse-1` (AAPL 1, filled) rewritten as PENDING MSFT 50 became ACTIVE MSFT with
    filled_qty 1 and no MSFT order. Its one order is AAPL's: REJECTED, with the reason."""
    store.put_documents([("reuse-1", pending("AAPL", qty="1"))])
    orders_submit_pending(gateway=gateway, store=store)
    assert broker.settle(timeout=5)
    order_attempts_sync(gateway=gateway, store=store)
    assert store.get("reuse-1").status is SignalStatus.ACTIVE

    store.put_documents([("reuse-1", pending("MSFT", qty="50"))])
    [outcome] = orders_submit_pending(gateway=gateway, store=store).outcomes

    signal = store.get("reuse-1")
    assert signal.status is SignalStatus.REJECTED, (signal.status, signal.status_reason)
    assert signal.filled_qty is None
    assert "conflict" in signal.status_reason and "bo-reuse-1-entry" in signal.status_reason
    assert outcome.outcome == "conflict"
    assert [o["symbol"] for o in broker.orders()] == ["AAPL"]
    attempt = OrderAttempt.objects.get(signal_id="reuse-1")
    assert attempt.status == OrderAttempt.Status.FILLED  # the AAPL order's record is untouched
    assert any("conflict" in m for m in messages(attempt, Kind.SIGNAL_TRANSITION))


def test_a_reused_signal_id_with_the_same_order_follows_it_without_a_second_order(
    broker, gateway, store
):
    store.put_documents([("again", pending("AAPL", qty="1"))])
    orders_submit_pending(gateway=gateway, store=store)
    assert broker.settle(timeout=5)
    order_attempts_sync(gateway=gateway, store=store)
    store.put_documents([("again", pending("AAPL", qty="1"))])

    [outcome] = orders_submit_pending(gateway=gateway, store=store).outcomes

    assert outcome.outcome == "already"
    assert store.get("again").status is SignalStatus.ACTIVE
    assert broker.counters()[POST] == 1


def test_a_pending_signal_rewritten_before_its_reconciling_move_is_not_moved(
    broker, gateway, store
):
    """The cycle read the document, then the writer rewrote it: the move decided on the read
    (its order is at the broker: PENDING -> SUBMITTED) is not applied to the new document."""
    store.put_documents([("late", pending("AAPL", qty="1"))])
    orders_submit_pending(gateway=gateway, store=store)
    store.put_documents([("late", pending("AAPL", qty="1"))])  # PENDING again, same order
    read = store.read(statuses=[SignalStatus.PENDING]).signals
    store.put_documents([("late", pending("TSLA", qty="7"))])

    sent = order_signals_submit(documents=read, gateway=gateway, store=store, actor="order-cycle")

    signal = store.get("late")
    assert (signal.symbol, signal.status) == ("TSLA", SignalStatus.PENDING)
    attempt = OrderAttempt.objects.get(signal_id="late")
    assert any("CHANGED" in m for m in messages(attempt, Kind.SIGNAL_TRANSITION))
    assert sent.outcomes[0].outcome == "deferred"
    # The next cycle decides on the TSLA document: a conflict with the AAPL order.
    [outcome] = orders_submit_pending(gateway=gateway, store=store).outcomes
    assert outcome.outcome == "conflict"
    assert store.get("late").status is SignalStatus.REJECTED
    assert broker.counters()[POST] == 1


def test_an_invalid_document_rewritten_before_its_rejection_is_not_rejected_for_the_old_one(
    broker, gateway, store
):
    """A PENDING document that did not parse, rewritten by its writer (still broken, in another
    way) between the read and the rejection: rejected for what it holds now, never for what it
    held."""
    store.put_documents([("broken", pending(order_type="limit"))])  # no limit_price
    read = store.read(statuses=[SignalStatus.PENDING])
    assert read.invalid
    store.put_documents([("broken", pending(qty="-3"))])

    order_signals_submit(documents=read.invalid, gateway=gateway, store=store, actor="order-cycle")

    doc = store.get("broken")
    assert doc.raw_status == "REJECTED"
    assert "qty" in doc.raw["status_reason"] and "limit_price" not in doc.raw["status_reason"]
    assert POST not in broker.counters()


def test_an_invalid_document_fixed_before_its_rejection_is_left_pending(broker, gateway, store):
    store.put_documents([("fixed", pending(order_type="limit"))])
    read = store.read(statuses=[SignalStatus.PENDING])
    store.put_documents([("fixed", pending())])  # the writer fixed it meanwhile

    order_signals_submit(documents=read.invalid, gateway=gateway, store=store, actor="order-cycle")

    signal = store.get("fixed")
    assert signal.status is SignalStatus.PENDING  # not rejected for a document it no longer is
    attempt = OrderAttempt.objects.get(signal_id="fixed")
    assert any("CHANGED" in m for m in messages(attempt, Kind.SIGNAL_TRANSITION))


# --- an order for a signal withdrawn meanwhile is undone ---------------------------------------


def withdraw_after_send(gateway, store, signal_id, how):
    submit = gateway.submit_order

    def then_withdraw(request):
        order = submit(request)
        if request.client_order_id == f"bo-{signal_id}-entry":
            if how == "deleted":
                delete_signal(store, signal_id)
            else:
                store.transition(
                    signal_id=signal_id,
                    expected_status=SignalStatus.PENDING,
                    new_status=SignalStatus.CANCELED,
                    reason="the strategy changed its mind",
                )
        return order

    gateway.submit_order = then_withdraw


@pytest.mark.parametrize("how", ["canceled", "deleted"])
def test_an_order_sent_for_a_signal_withdrawn_meanwhile_is_canceled_at_the_broker(
    broker, gateway, store, how
):
    broker.set_auto_fill(False)  # the order rests: nothing fills before the undo
    store.put_documents([("flip", pending()), ("keep", pending("MSFT"))])
    withdraw_after_send(gateway, store, "flip", how)

    got = by_signal(orders_submit_pending(gateway=gateway, store=store))

    assert got["flip"].outcome == "withdrawn", got["flip"]
    assert got["keep"].outcome == "submitted"
    assert broker.order("bo-flip-entry")["status"] == "canceled"
    assert broker.order("bo-keep-entry")["status"] != "canceled"
    assert broker.counters()[DELETE] == 1
    if how == "deleted":
        assert store.get("flip") is None
    else:
        assert store.get("flip").status is SignalStatus.CANCELED
    attempt = OrderAttempt.objects.get(signal_id="flip")
    assert attempt.status == OrderAttempt.Status.CANCELED
    kinds = list(attempt.events.order_by("created_at", "id").values_list("kind", flat=True))
    # Both recorded: the withdrawal the transition found, then the cancel and its answer.
    assert kinds[-4:] == [
        Kind.SIGNAL_TRANSITION,
        Kind.REQUEST_SENT,
        Kind.RESPONSE,
        Kind.STATUS_CHANGED,
    ]
    found = messages(attempt, Kind.SIGNAL_TRANSITION)[-1]
    assert ("NOT_FOUND" if how == "deleted" else "STATUS_MOVED") in found, found
    request = messages(attempt, Kind.REQUEST_SENT)[-1]
    assert request.startswith("DELETE /v2/orders/") and "by its writer after" in request
    # The sync and the next cycle leave it so.
    order_attempts_sync(gateway=gateway, store=store)
    orders_submit_pending(gateway=gateway, store=store)
    assert broker.counters()[POST] == 2


def test_an_order_filled_before_its_undo_is_recorded_not_hidden(broker, gateway, store):
    """The undo can come too late (a market order filled at once): the broker refuses the
    cancel; the attempt takes the fill and the refusal is on record."""
    broker.set_fidelity(fill_delay_s=0)  # fills in the answer itself
    store.put_documents([("late", pending())])
    withdraw_after_send(gateway, store, "late", "canceled")

    [outcome] = orders_submit_pending(gateway=gateway, store=store).outcomes

    assert outcome.outcome == "withdrawn"
    assert broker.order("bo-late-entry")["status"] == "filled"
    attempt = OrderAttempt.objects.get(signal_id="late")
    assert attempt.status == OrderAttempt.Status.FILLED
    errors = messages(attempt, Kind.ERROR)
    assert errors and "not undone" in errors[-1]
    assert store.get("late").status is SignalStatus.CANCELED  # the writer's word stands


def test_the_watcher_takes_a_newer_pending_version_that_came_while_the_old_was_handled(
    broker, gateway, store
):
    """Sent, withdrawn by its writer (the order is undone), then PENDING again while the
    watcher still held the signal: that version is handled after the first (not left PENDING
    for the beat's cycle). Its id's one order is canceled: the signal is CANCELED with that
    reason, and no second order is sent."""
    broker.set_auto_fill(False)
    submit, cancel = gateway.submit_order, gateway.cancel_order

    def then_withdraw(request):
        order = submit(request)
        store.transition(
            signal_id="x",
            expected_status=SignalStatus.PENDING,
            new_status=SignalStatus.CANCELED,
            reason="withdrawn",
        )
        return order

    def pending_again_first(order_id):
        seen = watcher.stats.documents
        store.transition(
            signal_id="x",
            expected_status=SignalStatus.CANCELED,
            new_status=SignalStatus.PENDING,
            reason="wanted after all",
        )
        wait_for(lambda: watcher.stats.documents > seen, what="the watcher to see PENDING again")
        return cancel(order_id)

    gateway.submit_order, gateway.cancel_order = then_withdraw, pending_again_first
    with Watcher(gateway, store, workers=1) as watcher:
        store.put_documents([("x", pending())])
        wait_for(
            lambda: "bo-x-entry is canceled" in (store.get("x").status_reason or ""),
            what="the newer PENDING version handled",
        )
    signal = store.get("x")
    assert signal.status is SignalStatus.CANCELED
    assert broker.order("bo-x-entry")["status"] == "canceled"
    assert broker.counters()[POST] == 1


def test_rapid_pending_canceled_flips_leave_no_canceled_signal_with_a_live_order(
    broker, gateway, store
):
    """The hostile pass flipped signals PENDING/CANCELED as fast as it could while the watcher
    ran: 3 ended CANCELED with an order at the broker. Every order sent for a signal its writer
    ends by withdrawing is canceled; never two orders for one signal."""
    broker.set_auto_fill(False)
    ids = [f"flip{i}" for i in range(6)]
    with Watcher(gateway, store, workers=2):
        store.put_documents([(sid, pending()) for sid in ids])
        for _ in range(4):
            for sid in ids:
                for old, new in (
                    (SignalStatus.PENDING, SignalStatus.CANCELED),
                    (SignalStatus.CANCELED, SignalStatus.PENDING),
                ):
                    store.transition(
                        signal_id=sid, expected_status=old, new_status=new, reason="flip"
                    )
        for sid in ids:  # the writer's last word: withdrawn
            store.transition(
                signal_id=sid,
                expected_status=SignalStatus.PENDING,
                new_status=SignalStatus.CANCELED,
                reason="final: withdrawn",
            )
    # Stopped: what was being sent is finished (its post-send work included).
    live = {o["client_order_id"] for o in broker.orders() if o["status"] != "canceled"}
    for sid in ids:
        if store.get(sid).status is SignalStatus.CANCELED:
            assert f"bo-{sid}-entry" not in live, sid
    assert max(Counter(o["client_order_id"] for o in broker.orders()).values(), default=0) <= 1


@pytest.mark.parametrize("rewrite", [dict(symbol="MSFT", qty="100"), dict(note="hello")])
def test_a_submitted_signal_follows_its_fill_only_while_its_document_asks_for_that_order(
    broker, gateway, store, rewrite
):
    """The fill of the AAPL 1 order moves its signal to ACTIVE only if the document still asks
    for AAPL 1: rewritten as MSFT 100 while SUBMITTED it is a recorded conflict, left SUBMITTED
    (never ACTIVE MSFT with AAPL's fill); another field changed, it follows on the new version."""
    store.put_documents([("held", pending("AAPL", qty="1"))])
    orders_submit_pending(gateway=gateway, store=store)
    submitted = store.get("held")
    assert submitted.status is SignalStatus.SUBMITTED
    fields = {"symbol": "AAPL", "side": "buy", "qty": "1", "order_type": "market"}
    store.put_documents(
        [
            (
                "held",
                {
                    **fields,
                    **rewrite,
                    "status": "SUBMITTED",
                    "client_order_id": submitted.client_order_id,
                    "alpaca_order_id": submitted.alpaca_order_id,
                },
            )
        ]
    )
    assert broker.settle(timeout=5)
    order_attempts_sync(gateway=gateway, store=store)

    signal = store.get("held")
    attempt = OrderAttempt.objects.get(signal_id="held")
    assert attempt.status == OrderAttempt.Status.FILLED
    if "symbol" in rewrite:
        assert signal.status is SignalStatus.SUBMITTED, signal.status
        assert signal.filled_qty is None
        found = messages(attempt, Kind.SIGNAL_TRANSITION)[-1]
        assert "conflict" in found and "symbol AAPL -> MSFT" in found, found
    else:
        assert signal.status is SignalStatus.ACTIVE
        assert signal.filled_qty == D("1")
