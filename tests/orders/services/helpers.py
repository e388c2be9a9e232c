"""What the tests of `orders.services` build: Alpaca's order JSON and trade_updates events (as
the stream delivers them), signal documents and stores, an order sent with its post-send work
still to do, and a store on which a fill lands during the PENDING -> SUBMITTED move."""

from brokerops.alpaca.stream import TradeUpdate, parse_trade_update
from brokerops.intent.local import LocalSignalStore
from brokerops.intent.schema import SignalStatus
from orders.models import OrderAttempt
from orders.services.submit import order_signals_submit

ORDER_ID = "61e69015-8549-4bfd-b9c3-01e75843f47d"


def order(status="filled", filled="10", coid="bo-sig1-entry", **extra):
    """An order as Alpaca serves it (10 AAPL at market, for ``sig1`` by default)."""
    return {
        "id": ORDER_ID,
        "client_order_id": coid,
        "symbol": "AAPL",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "status": status,
        "qty": "10",
        "filled_qty": filled,
        "filled_avg_price": "187.5" if filled != "0" else None,
        "created_at": "2026-11-25T10:00:00.000000Z",
        "submitted_at": "2026-11-25T09:59:59.999000Z",
        **extra,
    }


def update(event="fill", execution_id="e-1", **order_fields) -> TradeUpdate:
    """A trade_updates event of `order` (a fill of all 10 by default), parsed."""
    data = {
        "event": event,
        "order": order(**order_fields),
        "timestamp": "2026-11-25T10:00:00.100000123Z",
    }
    if event in ("fill", "partial_fill"):
        data |= {"execution_id": execution_id, "price": "187.5", "qty": "10", "position_qty": "10"}
    return parse_trade_update(data)


def submitted_store() -> LocalSignalStore:
    """The embedded store holding ``sig1``, SUBMITTED: 10 AAPL at market (`order`'s order)."""
    store = LocalSignalStore()
    store.put_documents(
        [
            (
                "sig1",
                {
                    "symbol": "AAPL",
                    "side": "buy",
                    "qty": "10",
                    "order_type": "market",
                    "status": "SUBMITTED",
                },
            )
        ]
    )
    return store


def fill(execution_id="e-1", coid="bo-sig1-entry", price="187.5", **order_fields) -> dict:
    """A fill event of `order` as the stream sends it (JSON, not parsed)."""
    return {
        "event": "fill",
        "execution_id": execution_id,
        "order": order(coid=coid, **order_fields),
        "price": price,
        "qty": "10",
        "position_qty": "10",
        "timestamp": "2026-11-25T10:00:00.100000123Z",
    }


def pending_doc(symbol="AAPL", qty="2", **fields) -> dict:
    """A PENDING signal's document: a market buy."""
    return {"symbol": symbol, "side": "buy", "qty": qty, "order_type": "market", **fields} | {
        "status": "PENDING"
    }


def sent_not_finished(broker, gateway, store, signal_id):
    """The order of a PENDING signal sent, its post-send work not done yet (attempt CREATED)."""
    broker.set_auto_fill(False)
    store.put_documents([(signal_id, pending_doc())])
    batch = order_signals_submit(
        documents=[store.get(signal_id)], gateway=gateway, store=store, actor="test", finish=False
    )
    assert [o.outcome for o in batch.outcomes] == ["submitted"]
    assert OrderAttempt.objects.get(signal_id=signal_id).status == OrderAttempt.Status.CREATED
    return batch.accepted


class FillsDuringTheMove:
    """A signal store on which the stream applies a fill just before the PENDING -> SUBMITTED
    move commits (after the post-send work applied the POST answer): the fill's own signal move
    finds the signal still PENDING."""

    def __init__(self, store, apply_fill):
        self._store, self._apply_fill = store, apply_fill

    def __getattr__(self, name):
        return getattr(self._store, name)

    def transition_many(self, transitions):
        if self._apply_fill and any(t.new_status is SignalStatus.SUBMITTED for t in transitions):
            self._apply_fill, apply_fill = None, self._apply_fill
            apply_fill()
        return self._store.transition_many(transitions)


class CountingStore:
    """The embedded store, noting the ids of each bulk read (``reads``)."""

    def __init__(self):
        self.store = LocalSignalStore()
        self.reads: list[list[str]] = []

    def __getattr__(self, name):
        return getattr(self.store, name)

    def get_many(self, ids):
        self.reads.append(list(ids))
        return self.store.get_many(ids)
