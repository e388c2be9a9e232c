"""The pure diff engine, rule by rule (no server, no database)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from reconciliation.diff import (
    AttemptFact,
    DiffInput,
    InvalidSignalFact,
    OrderFact,
    PositionFact,
    Severity,
    SignalFact,
    diff,
)
from reconciliation.diff import (
    ReconciliationErrors as K,
)

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def sig(id, symbol, qty, status="ACTIVE", side=None, coid=None):
    signed = None if qty is None else D(qty)
    side = side or ("sell" if signed is not None and signed < 0 else "buy")
    return SignalFact(
        id=id, symbol_key=symbol, status=status, signed_qty=signed, side=side, client_order_id=coid
    )


def pos(symbol, qty):
    return PositionFact(symbol_key=symbol, qty=D(qty))


def run(positions=(), signals=(), orders=(), attempts=(), invalid=()):
    return diff(
        DiffInput(
            positions=positions,
            orders=orders,
            signals=signals,
            invalid_signals=invalid,
            attempts=attempts,
            now=NOW,
            client_order_id_prefix="bo",
        )
    )


def kinds(findings):
    return [(f.kind, f.symbol) for f in findings]


def test_agreement_gives_no_findings():
    assert (
        run(
            [pos("AAPL", "10"), pos("TSLA", "-5")],
            [sig("s1", "AAPL", "10"), sig("s2", "TSLA", "-5")],
        )
        == []
    )


def test_active_signal_without_a_holding_is_an_orphan_to_confirm():
    [f] = run([], [sig("s1", "AAPL", "10", coid="bo-s1-entry")])
    assert f.kind is K.ORPHAN_POSITION
    assert f.severity is Severity.CRITICAL
    assert (f.signal_id, f.client_order_id) == ("s1", "bo-s1-entry")
    assert (f.expected_qty, f.actual_qty) == (D("10"), D("0"))
    assert f.needs_confirmation


def test_every_active_signal_on_an_orphaned_symbol_is_reported():
    found = run([], [sig("s1", "BTCUSD", "0.5"), sig("s2", "BTCUSD", "0.25")])
    assert [(f.kind, f.signal_id) for f in found] == [
        (K.ORPHAN_POSITION, "s1"),
        (K.ORPHAN_POSITION, "s2"),
    ]


def test_position_without_active_signal_is_untracked():
    [f] = run([pos("MSFT", "3")], [sig("s1", "MSFT", "3", status="CLOSED")])
    assert (f.kind, f.actual_qty, f.expected_qty) == (K.UNTRACKED_POSITION, D("3"), D("0"))
    assert not f.needs_confirmation


def test_quantities_of_several_signals_add_up_sells_negative():
    signals = [sig("s1", "AAPL", "10"), sig("s2", "AAPL", "5"), sig("s3", "AAPL", "-3")]
    assert run([pos("AAPL", "12")], signals) == []
    [f] = run([pos("AAPL", "15")], signals)
    assert (f.kind, f.expected_qty, f.actual_qty) == (K.QTY_MISMATCH, D("12"), D("15"))
    assert f.signal_id == "s1,s2,s3"
    assert f.signal_ids == ("s1", "s2", "s3")


def test_a_finding_about_several_signals_keeps_an_id_holding_a_comma_whole():
    [f] = run([pos("AAPL", "9")], [sig("a,b", "AAPL", "2"), sig("c", "AAPL", "3")])
    assert f.kind is K.QTY_MISMATCH
    assert f.signal_ids == ("a,b", "c")  # the stored rows follow these (finding_signal_ids)


def test_short_held_where_long_expected_is_a_side_mismatch():
    [f] = run([pos("TSLA", "-4")], [sig("s1", "TSLA", "4")])
    assert (f.kind, f.expected_qty, f.actual_qty) == (K.SIDE_MISMATCH, D("4"), D("-4"))
    assert "expected long" in f.detail


def test_long_held_where_short_expected_is_a_side_mismatch():
    [f] = run([pos("TSLA", "2")], [sig("s1", "TSLA", "-2")])
    assert f.kind is K.SIDE_MISMATCH and "expected short" in f.detail


def test_notional_signals_check_presence_and_side_only():
    assert run([pos("AAPL", "0.731")], [sig("s1", "AAPL", None, side="buy")]) == []
    [f] = run([pos("AAPL", "-1")], [sig("s1", "AAPL", None, side="buy")])
    assert f.kind is K.SIDE_MISMATCH
    [f] = run([], [sig("s1", "AAPL", None, side="buy")])
    assert f.kind is K.ORPHAN_POSITION


def test_symbol_with_an_order_in_flight_is_not_an_orphan():
    order = OrderFact(id="o1", client_order_id="manual-1", symbol_key="AAPL", status="new")
    [f] = run([], [sig("s1", "AAPL", "10")], orders=[order])
    assert f.kind is K.QTY_MISMATCH
    assert f.severity is Severity.INFO
    assert "in flight" in f.detail
    assert not f.needs_confirmation


def test_submitted_signal_marks_its_symbol_in_flight():
    found = run([pos("AAPL", "5")], [sig("s1", "AAPL", "5", status="SUBMITTED")])
    [f] = found
    assert (f.kind, f.severity) == (K.UNTRACKED_POSITION, Severity.INFO)


def attempt(coid, status="open", broker_status="new", age_s=3600, symbol="AAPL"):
    return AttemptFact(
        client_order_id=coid,
        symbol_key=symbol,
        status=status,
        broker_status=broker_status,
        created_at=NOW - timedelta(seconds=age_s),
        signal_id=coid.split("-")[1],
    )


def test_open_attempt_missing_from_the_list_asks_for_confirmation():
    [f] = run(attempts=[attempt("bo-s1-entry")])
    assert (f.kind, f.client_order_id, f.needs_confirmation) == (
        K.ORDER_NOT_FOUND,
        "bo-s1-entry",
        True,
    )


def test_young_attempt_missing_from_the_list_is_left_alone():
    assert run(attempts=[attempt("bo-s1-entry", age_s=5)]) == []


def test_closed_attempts_are_not_checked_against_the_list():
    assert run(attempts=[attempt("bo-s1-entry", status="filled", broker_status="filled")]) == []


def test_status_drift_reports_alpacas_status():
    order = OrderFact(id="o1", client_order_id="bo-s1-entry", symbol_key="AAPL", status="canceled")
    [f] = run(orders=[order], attempts=[attempt("bo-s1-entry")])
    assert (f.kind, f.broker_status, f.alpaca_order_id) == (K.ORDER_STATUS_DRIFT, "canceled", "o1")


def test_unknown_broker_status_is_drift_but_not_terminal():
    order = OrderFact(
        id="o1", client_order_id="bo-s1-entry", symbol_key="AAPL", status="pending_review_v2"
    )
    [f] = run(orders=[order], attempts=[attempt("bo-s1-entry")])
    assert f.kind is K.ORDER_STATUS_DRIFT


def test_matching_status_is_no_drift():
    order = OrderFact(id="o1", client_order_id="bo-s1-entry", symbol_key="AAPL", status="new")
    assert [
        f
        for f in run(orders=[order], attempts=[attempt("bo-s1-entry")])
        if f.kind is K.ORDER_STATUS_DRIFT
    ] == []


def test_order_with_our_prefix_we_never_recorded_is_unknown():
    ours = OrderFact(
        id="o1",
        client_order_id="bo-s9-entry",
        symbol_key="MSFT",
        status="filled",
        filled_qty=D("2"),
    )
    theirs = OrderFact(id="o2", client_order_id="manual-123", symbol_key="MSFT", status="filled")
    [f] = run(orders=[ours, theirs])
    assert (f.kind, f.client_order_id, f.alpaca_order_id) == (K.UNKNOWN_ORDER, "bo-s9-entry", "o1")


def test_prefix_match_needs_the_separator():
    other_system = OrderFact(id="o1", client_order_id="bot-1", symbol_key="MSFT", status="filled")
    assert run(orders=[other_system]) == []


def test_invalid_signals_are_reported_with_their_reasons():
    [f] = run(invalid=[InvalidSignalFact(id="bad1", reasons=("qty: not a number", "side: x"))])
    assert (f.kind, f.signal_id, f.detail) == (
        K.INVALID_SIGNAL,
        "bad1",
        "qty: not a number; side: x",
    )


def test_findings_come_in_a_stable_order():
    positions = [pos("ZM", "1"), pos("AAPL", "1")]
    signals = [sig("s1", "MSFT", "1")]
    assert kinds(run(positions, signals)) == [
        (K.UNTRACKED_POSITION, "AAPL"),
        (K.ORPHAN_POSITION, "MSFT"),
        (K.UNTRACKED_POSITION, "ZM"),
    ]


def fee_run(held, expected, *, crypto=True, bps="40"):
    return diff(
        DiffInput(
            positions=[PositionFact("BTCUSD", D(held), crypto=crypto)],
            orders=[],
            signals=[sig("s-btc", "BTCUSD", expected)],
            now=NOW,
            crypto_fee_tolerance_bps=D(bps),
        )
    )


def test_a_crypto_holding_short_by_the_buy_fee_is_not_a_mismatch():
    """Alpaca's own example: 0.0002 BTC bought holds 0.000199499 (25 bps taker fee)."""
    assert fee_run("0.000199499", "0.0002") == []


def test_a_crypto_holding_short_by_more_than_the_tolerance_is_a_qty_mismatch():
    [finding] = fee_run("0.000199", "0.0002", bps="20")
    assert finding.kind is K.QTY_MISMATCH


def test_the_fee_tolerance_never_covers_equities_or_a_surplus():
    assert [f.kind for f in fee_run("0.000199499", "0.0002", crypto=False)] == [K.QTY_MISMATCH]
    assert [f.kind for f in fee_run("0.0002001", "0.0002")] == [K.QTY_MISMATCH]


def test_a_closed_attempts_id_is_enough_to_make_an_order_ours():
    ours = OrderFact(id="o1", client_order_id="bo-s9-entry", symbol_key="MSFT", status="filled")
    recorded = DiffInput(
        positions=(),
        orders=[ours],
        signals=(),
        recorded_client_order_ids=frozenset({"bo-s9-entry"}),
        now=NOW,
    )
    assert diff(recorded) == []
    assert kinds(run(orders=[ours])) == [(K.UNKNOWN_ORDER, "MSFT")]


def test_the_broker_and_store_types_are_compared_as_the_facts_are():
    """The run hands the diff the gateway's positions and order summaries and the parsed signals
    as read: the findings are those of the same data as facts."""
    from brokerops.alpaca import OrderSummary, Position
    from brokerops.intent.schema import parse_signal

    def position(symbol, qty, asset_class="us_equity"):
        return Position(symbol, symbol, D(qty), "long", None, None, None, asset_class)

    def signal(id, symbol, qty, side="buy", status="ACTIVE"):
        doc = {"symbol": symbol, "side": side, "qty": qty, "order_type": "market"}
        return parse_signal(id, {**doc, "status": status, "client_order_id": f"bo-{id}-entry"})

    positions = [
        position("AAPL", "11"),
        position("TSLA", "5"),
        position("BTCUSD", "0.0199", "crypto"),
    ]
    signals = [
        signal("s1", "AAPL", "10"),
        signal("s2", "MSFT", "3"),
        signal("s3", "TSLA", "5", side="sell"),
        signal("s4", "BTC/USD", "0.02"),
        signal("s5", "NVDA", "1", status="SUBMITTED"),
    ]
    orders = [
        OrderSummary("o1", "bo-s5-entry", "NVDA", "NVDA", "buy", "new", D(1), D(0)),
        OrderSummary("o2", "bo-s6-entry", "AMD", "AMD", "buy", "filled", D(1), D(1)),
        OrderSummary("o3", "bo-s1-entry", "AAPL", "AAPL", "buy", "canceled", D(10), D(0)),
    ]
    attempts = [
        AttemptFact("bo-s1-entry", "AAPL", "open", "new", NOW - timedelta(hours=1), "o3", "s1")
    ]
    as_read = DiffInput(
        positions=positions,
        orders=orders,
        signals=signals,
        attempts=attempts,
        now=NOW,
        crypto_fee_tolerance_bps=D(100),
    )
    as_facts = DiffInput(
        positions=[
            PositionFact(p.symbol_key, p.qty, crypto=p.asset_class == "crypto") for p in positions
        ],
        orders=[
            OrderFact(o.id, o.client_order_id, o.symbol_key, o.status, o.side, o.qty, o.filled_qty)
            for o in orders
        ],
        signals=[
            SignalFact(
                s.id, s.symbol_key, str(s.status), s.signed_qty, str(s.side), s.client_order_id
            )
            for s in signals
        ],
        attempts=attempts,
        now=NOW,
        crypto_fee_tolerance_bps=D(100),
    )
    findings = diff(as_read)
    assert findings == diff(as_facts)
    assert {f.kind for f in findings} >= {
        K.QTY_MISMATCH,
        K.ORPHAN_POSITION,
        K.SIDE_MISMATCH,
        K.UNKNOWN_ORDER,
    }
