"""The pure explanation (docs/design.md section 18.4): what the account's activities explain of
the holdings against the ACTIVE signals. The run end to end: tests/integration/
test_explained_breaks.py."""

from datetime import UTC, datetime
from decimal import Decimal as D

from brokerops.alpaca.parsing.activities import parse_activity
from brokerops.intent.schema import parse_signal
from reconciliation.diff import Finding, ReconciliationErrors, Severity
from reconciliation.explain import Booked, Since, annotate, explain

DAY = "2026-12-05"


def booked(pk, kind, symbol, qty, leg="", **fields):
    raw = {"id": f"a{pk}", "activity_type": kind, "symbol": symbol, "qty": str(qty), "date": DAY}
    if leg:
        raw["description"] = f"{leg}, From QTY:1, To QTY:1"
    return Booked(pk, parse_activity({**raw, **fields}))


def signal(sid, symbol, qty, side="buy", followed=""):
    doc = {"symbol": symbol, "side": side, "qty": str(qty), "order_type": "market"}
    doc |= {"status": "ACTIVE", "followed_activities": followed}
    return parse_signal(sid, doc, version="v1"), Since(fill_pk=0)


def split(pk, symbol, old, new):
    return [
        booked(pk, "SPLIT", symbol, -old, "REMOVE"),
        booked(pk + 1, "SPLIT", symbol, new, "ADD"),
    ]


def test_a_split_fully_explained_moves_the_signal():
    out = explain(
        signals=[signal("s", "AAPL", 10)], held={"AAPL": D(40)}, activities=split(1, "AAPL", 10, 40)
    )
    (follow,) = out.follows
    assert (follow.qty_from, follow.qty_to, follow.activity_ids) == (D(10), D(40), ("a1", "a2"))
    assert "4:1" in follow.reason() and out.explained["AAPL"] and not out.notes


def test_a_split_partly_explained_moves_nothing_and_says_the_part():
    out = explain(
        signals=[signal("s", "AAPL", 10)], held={"AAPL": D(38)}, activities=split(1, "AAPL", 10, 40)
    )
    assert out.follows == [] and "expected after them 40, held 38" in out.partly["AAPL"]
    finding = Finding(
        ReconciliationErrors.QTY_MISMATCH, Severity.WARNING, symbol="AAPL", detail="x"
    )
    (annotated,) = annotate([finding], out)
    assert annotated.explained and "activities explain part of it" in annotated.detail


def test_an_activity_followed_is_never_applied_again():
    out = explain(
        signals=[signal("s", "AAPL", 40, followed="a1\na2")],
        held={"AAPL": D(40)},
        activities=split(1, "AAPL", 10, 40),
    )
    assert out.follows == [] and out.notes == [] and out.partly == {}


def test_a_fee_with_several_signals_on_the_coin_is_not_guessed():
    fee = booked(5, "CFEE", "BTCUSD", "-0.00001")
    out = explain(
        signals=[signal("a", "BTC/USD", "0.01"), signal("b", "BTC/USD", "0.01")],
        held={"BTC/USD": D("0.01999")},
        activities=[fee],
        crypto={"BTC/USD"},
        fee_tolerance_bps=D(40),
    )
    assert out.follows == [] and "whose buy it was is not known" in out.notes[0].reason
    assert out.fee_posted == frozenset()


def test_since_a_fill_and_since_a_time():
    act = booked(3, "SPIN", "NEW", 1, "ADD")
    assert Since(fill_pk=2).covers(act) and not Since(fill_pk=3).covers(act)
    assert Since(time=datetime(2026, 12, 4, tzinfo=UTC)).covers(act)
    assert not Since(time=datetime(2026, 12, 6, tzinfo=UTC)).covers(act) and not Since().covers(act)


def test_unknown_types_and_one_sided_pairs_are_noted():
    out = explain(
        signals=[signal("s", "AAPL", 10)],
        held={"AAPL": D(10)},
        activities=[booked(1, "XYZ", "AAPL", 1), booked(2, "MA", "AAPL", -10, "REMOVE")],
    )
    reasons = [n.reason for n in out.notes]
    assert any("'XYZ' is not followed" in r for r in reasons)
    assert any("only its REMOVE side is posted yet" in r for r in reasons)
    assert out.follows == []
