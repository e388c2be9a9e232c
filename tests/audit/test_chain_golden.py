"""Golden hashes: the hash of a chained row is part of the audit format (docs/design.md
section 12), so a faster writer must produce byte-identical hashes. The figures below were
computed by the writer as it was before its per-model encoders (commit 80eafce) and are
hard-coded: any change to what is hashed, or how, fails here."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from audit.chain import chain_append
from audit.models import ScheduleChange
from audit.services import audit_verify
from brokerops.alpaca.parsing import parse_activities
from ledger.models import AccountActivity
from ledger.services import _row
from reconciliation.models import Mismatch, ReconciliationRun

pytestmark = pytest.mark.django_db

PARIS = timezone(timedelta(hours=1))
WHEN = datetime(2026, 1, 5, 15, 30, 0, 123456, tzinfo=PARIS)

ACTIVITY_BODIES = [
    {
        "id": "20260105143000123::00000000-0000-4000-8000-000000000001",
        "activity_type": "FILL",
        "type": "partial_fill",
        "transaction_time": "2026-01-05T14:30:00.123456Z",
        "qty": "3.000",
        "price": "187.2500",
        "side": "buy",
        "symbol": "AAPL",
        "order_id": "order-1",
        "cum_qty": "3",
        "leaves_qty": "7",
        "order_status": "partially_filled",
    },
    {
        "id": "20260105143000124::00000000-0000-4000-8000-000000000002",
        "activity_type": "CFEE",
        "date": "2026-01-05",
        "net_amount": "0",
        "description": "Coin Pair Transaction Fee (Non USD) \u00e9\u2603",
        "symbol": "BTCUSD",
        "qty": "-0.000000000123456789012345",
        "price": "97123.123456789012345678",
        "status": "executed",
    },
    {
        "ref_id": "20260105143000125::00000000-0000-4000-8000-000000000003",
        "activity_type": "ZZNEW",
        "activity_subtype": "WHO",
        "executed_at": "2026-01-05T09:30:00-05:00",
        "qty": "1E+2",
        "details": {"old_symbol": "OLD", "new_symbol": "NEW", "nested": [1, 2.5, None, True]},
    },
]
ACTIVITY_HASHES = [
    "00c9afc8c9b6d109af5cd623b4f60a2ec13434ace38db99ebd36337ac1bddc88",
    "c5b25ba239fc5563d0a6c9b7a374998aa307835f96957f795caf520a18308ec4",
    "cef817f52d3a97fe2aae261bac548ed4060acf16babf240354f34fb0aefb0b04",
]


def test_account_activity_hashes_are_unchanged():
    rows = [_row("golden", a, WHEN) for a in parse_activities(ACTIVITY_BODIES)]
    chain_append(rows)
    assert [row.hash for row in rows] == ACTIVITY_HASHES
    stored = list(AccountActivity.objects.order_by("id").values_list("prev_hash", "hash"))
    assert stored == [(row.prev_hash, row.hash) for row in rows]
    report = audit_verify(trigger="command", processes=1).reports["account_activities"]
    assert report.rows == 3 and not report.problems  # what is stored hashes as it was hashed


SCHEDULE_HASHES = [
    "a84bc93588c174683baa4288bb9546323df9d813e492f414a9cbb01b3a887e78",
    "1bf49735753c44123d081eb1fddbf0d4efee4f98edbbb7b4b1a3be0db2f04142",
]


def test_schedule_change_hashes_are_unchanged():
    rows = [
        ScheduleChange(
            created_at=WHEN,
            actor="ops",
            action="edit",
            object_type="periodictask",
            object_id=7,
            object_name="reconcile \u00e9",
            before={"b": (1, 2), "a": {"z": None}, 3: "int key"},
            after={"enabled": False, "every": 1.5},
        ),
        ScheduleChange(
            created_at=WHEN.astimezone(UTC),
            actor="ops",
            action="delete",
            object_type="crontabschedule",
            object_id=None,
            object_name="",
            before=None,
            after={},
        ),
    ]
    chain_append(rows)
    assert [row.hash for row in rows] == SCHEDULE_HASHES


MISMATCH_HASHES = [
    "cb3e1e09134c75ec318a5af143ecc72c300987978dc5241edac3a2975693358b",
    "9cc64ade7731391e86097b82256ab2c2a42ced9c4eec44c54a799fd1ad08e092",
]


def test_mismatch_hashes_are_unchanged():
    run = ReconciliationRun.objects.create(id=4242, trigger="command", status="running")
    rows = [
        Mismatch(
            run=run,
            kind="QTY_MISMATCH",
            severity="high",
            symbol="AAPL",
            signal_id="sig-1",
            expected_qty=Decimal("10.5"),
            actual_qty=Decimal("3"),
            detail="expected 10.5",
            created_at=WHEN,
        ),
        Mismatch(
            run=run,
            kind="UNTRACKED_POSITION",
            severity="low",
            symbol="BTC/USD",
            expected_qty=None,
            actual_qty="0.000000001",
            created_at=WHEN,
        ),
    ]
    chain_append(rows)
    assert [row.hash for row in rows] == MISMATCH_HASHES
