"""Account activities as Alpaca sends them (docs/design.md section 18): every real payload of the
corpus reads into the ledger's record, in both of Alpaca's shapes; hostile rows are kept or
refused as the parser's rules say, never guessed."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from brokerops.alpaca.parsing import ParseError, parse_activities, parse_activity

CORPUS = Path(__file__).parent / "corpus"


def body(name: str) -> list[dict]:
    return json.loads((CORPUS / name).read_text())["body"]


def test_a_fill_reads_its_type_side_order_and_time():
    fill, div = parse_activities(body("alpaca-docs_activities_fill_and_div.json"))
    assert (fill.family, fill.sub_type, fill.side, fill.symbol) == ("FILL", "fill", "buy", "LPCN")
    assert fill.order_id == "904837e3-3b76-47ec-b432-046db621571b"
    assert fill.qty == Decimal("1") and fill.price == Decimal("1.63")
    assert fill.time == datetime(2019, 5, 24, 15, 34, 6, 977000, tzinfo=UTC)
    assert (div.family, div.symbol, div.net_amount) == ("DIV", "T", Decimal("1.02"))
    assert div.time == datetime(2019, 8, 1, tzinfo=UTC)  # a date only: midnight UTC
    assert div.raw["per_share_amount"] == "0.51"


def test_partial_fills_keep_nine_decimals_exactly():
    rows = parse_activities(body("alpaca-py_activities_partial_fills.json"))
    assert [a.sub_type for a in rows] == ["partial_fill", "fill", "fill", "partial_fill", "fill"]
    assert rows[0].qty == Decimal("1.792161878")
    assert rows[2].side == "sell" and rows[2].qty == Decimal("0.058773239")


def test_a_crypto_fee_is_negative_in_the_coin():
    (fee,) = parse_activities(body("alpaca-docs_activity_cfee.json"))
    assert (fee.family, fee.symbol, fee.qty) == ("CFEE", "ETHUSD", Decimal("-0.000195"))
    assert fee.moves_position and fee.symbol_key == "ETHUSD"


@pytest.mark.parametrize(
    ("name", "sub_type", "symbols", "qtys"),
    [
        ("split_fsplit", "FSPLIT", ["SF", "SF"], ["-0.54796447", "0.821946705"]),
        ("split_rsplit", "RSPLIT", ["XRPT", "XRPT"], ["-33", "1.65"]),
        ("nc_snc", "SNC", ["RNA", "RNAM"], ["-7.30762391", "7.30762391"]),
        ("ma_sma", "SMA", ["<ACQUIREE_SYMBOL>", "<ACQUIRER_SYMBOL>"], ["-2000", "200"]),
    ],
)
def test_a_corporate_action_is_a_remove_and_an_add(name, sub_type, symbols, qtys):
    remove, add = parse_activities(body(f"alpaca-docs_activity_sse_{name}.json"))
    assert [remove.sub_type, add.sub_type] == [sub_type, sub_type]
    assert [remove.leg, add.leg] == ["REMOVE", "ADD"]
    assert [remove.symbol, add.symbol] == symbols
    assert [remove.qty, add.qty] == [Decimal(q) for q in qtys]
    assert remove.moves_position and add.time == datetime(*add.time.timetuple()[:6], tzinfo=UTC)


def test_a_spin_off_adds_the_new_symbol():
    (spin,) = parse_activities(body("alpaca-docs_activity_sse_spin.json"))
    assert (spin.family, spin.symbol, spin.qty, spin.leg) == ("SPIN", "RNA", Decimal("0.2"), "ADD")


def test_the_legacy_description_names_the_leg():
    row = {
        "id": "1",
        "activity_type": "SSP",
        "description": "REMOVE, From QTY:-300, To QTY:100, Position Value:1261.5",
        "qty": "300",
    }
    activity = parse_activity(row)
    assert (activity.family, activity.leg) == ("SPLIT", "REMOVE")  # older code, same family
    assert parse_activity({"id": "2", "activity_type": "SSO"}).family == "SPIN"


def test_cash_kinds_and_fees_are_not_position_moves():
    for name in ("cash", "fee", "div_cdiv"):
        for activity in parse_activities(body(f"alpaca-docs_activity_sse_{name}.json")):
            assert activity.known and not activity.moves_position
            assert activity.net_amount is not None


# --- hostile rows ---------------------------------------------------------------------------


def test_an_unknown_type_and_sub_type_are_kept_as_sent():
    activity = parse_activity(
        {"id": "9", "activity_type": "ZZNEW", "activity_sub_type": "QQ", "qty": "1"}
    )
    assert (activity.activity_type, activity.sub_type, activity.family) == ("ZZNEW", "QQ", "OTHER")
    assert not activity.known and activity.raw["activity_type"] == "ZZNEW"


def test_quantities_finer_than_nine_decimals_are_exact():
    activity = parse_activity({"id": "1", "activity_type": "CFEE", "qty": "-0.0000000123456789"})
    assert activity.qty == Decimal("-0.0000000123456789")
    assert parse_activity({"id": "2", "activity_type": "FILL", "qty": 0.1}).qty == Decimal("0.1")


def test_missing_fields_are_none_but_id_and_type_are_required():
    bare = parse_activity({"id": "1", "activity_type": "SPLIT"})
    assert (bare.symbol, bare.qty, bare.price, bare.time, bare.leg) == (None,) * 5
    with pytest.raises(ParseError, match="missing 'id'"):
        parse_activity({"activity_type": "FILL"})
    with pytest.raises(ParseError, match="activity_type"):
        parse_activity({"id": "1"})


@pytest.mark.parametrize(
    "row",
    [
        {"id": "1", "activity_type": "FILL", "qty": "lots"},
        {"id": "1", "activity_type": "FILL", "price": "NaN"},
        {"id": "1", "activity_type": "FILL", "qty": "1e12"},
        {"id": "1", "activity_type": "FILL", "transaction_time": "yesterday"},
    ],
)
def test_a_figure_that_is_not_a_number_fails_the_page(row):
    with pytest.raises(ParseError):
        parse_activities([row])
    with pytest.raises(ParseError, match="expected a list"):
        parse_activities({"id": "1"})
