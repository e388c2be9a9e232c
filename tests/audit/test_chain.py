"""The canonical serialisation and the hash of a chained row (pure: no database)."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from audit.chain import CHAINS, canonical, head_signature, plain, row_hash


def test_canonical_form_sorts_keys_and_writes_plain_values():
    when = datetime(2026, 11, 25, 21, 0, 1, 5, tzinfo=timezone(timedelta(hours=2)))
    text = canonical({"b": Decimal("10.000000000"), "a": when, "c": {"z": 1, "y": [1.5, None]}})
    assert text == (b'{"a":"2026-11-25T19:00:01.000005+00:00","b":"10","c":{"y":[1.5,null],"z":1}}')


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("10"), "10"),
        (Decimal("10.000000000"), "10"),
        (Decimal("0.000000001"), "0.000000001"),
        (Decimal("1E+3"), "1000"),
        (Decimal("-0.000"), "0"),
        (Decimal("123456789012345678.5"), "123456789012345678.5"),
    ],
)
def test_a_decimal_has_one_text_whatever_its_scale(value, text):
    assert plain(value) == text


def test_a_naive_timestamp_is_refused():
    with pytest.raises(ValueError, match="naive"):
        plain(datetime(2026, 1, 1))


def test_the_hash_covers_the_previous_hash_and_every_value():
    values = {"kind": "created", "message": "hi", "created_at": datetime(2026, 1, 1, tzinfo=UTC)}
    base = row_hash("", values)
    assert len(base) == 64
    assert row_hash("", dict(values)) == base  # deterministic
    assert row_hash("0" * 64, values) != base
    assert row_hash("", {**values, "message": "hi!"}) != base
    assert (
        row_hash("", {**values, "created_at": datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)}) != base
    )


def test_a_head_signature_depends_on_the_key_and_every_part():
    sig = head_signature("k1", chain="order_events", row_id=7, hash="ab")
    assert sig != head_signature("k2", chain="order_events", row_id=7, hash="ab")
    assert sig != head_signature("k1", chain="mismatches", row_id=7, hash="ab")
    assert sig != head_signature("k1", chain="order_events", row_id=8, hash="ab")
    assert sig != head_signature("k1", chain="order_events", row_id=7, hash="ac")


def test_every_chain_has_a_distinct_lock_key():
    assert len({spec.lock_key for spec in CHAINS}) == len(CHAINS)


def test_the_fast_hasher_of_many_rows_gives_the_same_hash():
    from audit.chain import CHAINS_BY_NAME, row_hasher
    from reconciliation.models import Mismatch

    spec = CHAINS_BY_NAME["mismatches"]
    values = {
        "run_id": 3,
        "kind": "QTY_MISMATCH",
        "severity": "warning",
        "symbol": "MSFT",
        "signal_id": "sig é",
        "client_order_id": "",
        "alpaca_order_id": "",
        "expected_qty": Decimal("10.500000000"),
        "actual_qty": None,
        "action": "flagged",
        "detail": 'quote " and \\u2028',
        "created_at": datetime(2026, 1, 1, 12, 0, 0, 1, tzinfo=UTC),
    }
    fast = row_hasher(Mismatch, spec)
    assert fast("ab", [values[n] for n in spec.fields]) == row_hash("ab", values)
