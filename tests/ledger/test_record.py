"""The ledger's one writer (docs/design.md section 18.2): each activity stored once per account,
exactly as sent, append-only and hash-chained; verify_audit covers the chain."""

from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from audit.chain import CHAINS_BY_NAME
from audit.services import audit_verify
from brokerops.alpaca.parsing import parse_activities
from ledger.models import AccountActivity
from ledger.selectors import activities_after, activity_cursor
from ledger.services import ActivityRefused, activities_record
from tests.ledger.conftest import activity

pytestmark = pytest.mark.django_db


def parsed(*rows):
    return parse_activities(list(rows))


def test_every_field_is_stored_as_sent_and_nine_plus_decimals_stay_exact():
    fee = {
        "id": "20260105143000123::11111111-0000-4000-8000-000000000001",
        "activity_type": "CFEE",
        "date": "2026-01-05",
        "net_amount": "0",
        "description": "Coin Pair Transaction Fee (Non USD)",
        "symbol": "BTCUSD",
        "qty": "-0.000000000123456789012345",
        "price": "97123.123456789012345678",
        "status": "executed",
    }
    result = activities_record(account="default", activities=parsed(fee))
    assert (result.new, result.already_stored) == (1, 0)
    row = AccountActivity.objects.get()
    assert row.qty == Decimal("-0.000000000123456789012345")
    assert row.price == Decimal("97123.123456789012345678")
    assert (row.activity_type, row.symbol, row.account) == ("CFEE", "BTCUSD", "default")
    assert row.raw == fee and row.as_activity().family == "CFEE"
    assert row.occurred_at.isoformat() == "2026-01-05T00:00:00+00:00"


def test_an_id_already_stored_is_skipped_never_a_failure():
    first = parsed(activity(1), activity(2))
    assert activities_record(account="default", activities=first).new == 2
    again = activities_record(account="default", activities=parsed(activity(2), activity(3)))
    assert (again.new, again.already_stored) == (1, 1)
    twice_in_one = activities_record(account="default", activities=parsed(activity(4), activity(4)))
    assert (twice_in_one.new, twice_in_one.already_stored) == (1, 1)
    assert AccountActivity.objects.count() == 4
    # Another account's activity of the same id is its own.
    assert activities_record(account="client", activities=parsed(activity(1))).new == 1


def test_the_cursor_is_the_last_row_stored_for_the_account():
    assert activity_cursor(account="default") is None
    activities_record(account="default", activities=parsed(activity(1), activity(2)))
    activities_record(account="client", activities=parsed(activity(9)))
    assert activity_cursor(account="default") == activity(2)["id"]
    assert activity_cursor(account="client") == activity(9)["id"]
    first = AccountActivity.objects.get(activity_id=activity(1)["id"])
    after = activities_after(account="default", after_pk=first.pk)
    assert [a.activity_id for a in after] == [activity(2)["id"]]


def test_the_families_helper_takes_older_codes_and_unknown_types():
    rows = parsed(
        activity(1, activity_type="SSP", qty="-10"),
        activity(2, activity_type="SPLIT", qty="40"),
        activity(3, activity_type="ZZNEW"),
        activity(4),
    )
    activities_record(account="default", activities=rows)
    splits = activities_after(account="default", families=["SPLIT"])
    assert [a.activity_type for a in splits] == ["SSP", "SPLIT"]
    assert [a.activity_type for a in activities_after(account="default", families=["ZZNEW"])] == [
        "ZZNEW"
    ]


def test_a_field_too_long_for_its_column_refuses_the_batch_naming_it():
    long_symbol = activity(2, symbol="X" * 65)
    with pytest.raises(ActivityRefused, match="symbol longer than 64"):
        activities_record(account="default", activities=parsed(activity(1), long_symbol))
    assert not AccountActivity.objects.exists()


def test_rows_are_append_only_and_only_the_writer_adds_them():
    activities_record(account="default", activities=parsed(activity(1)))
    row = AccountActivity.objects.get()
    with pytest.raises(TypeError, match="append-only"):
        row.save()
    for statement in (
        "UPDATE ledger_accountactivity SET qty = '5'",
        "DELETE FROM ledger_accountactivity",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    with pytest.raises(TypeError, match="hash-chained"):
        AccountActivity.objects.bulk_create([AccountActivity(activity_id="x", activity_type="X")])


def test_verify_audit_covers_the_chain_and_names_a_changed_row():
    activities_record(account="default", activities=parsed(activity(1), activity(2)))
    assert "account_activities" in CHAINS_BY_NAME
    clean = audit_verify(trigger="command", processes=1)
    assert clean.ok and clean.reports["account_activities"].rows == 2
    target = AccountActivity.objects.order_by("id").first()
    _without_triggers(
        "ledger_accountactivity",
        f"UPDATE ledger_accountactivity SET qty = '7' WHERE id = {int(target.pk)}",  # noqa: S608
    )
    broken = audit_verify(trigger="command", processes=1)
    assert not broken.ok
    problems = [str(p) for p in broken.reports["account_activities"].problems]
    assert problems and str(target.pk) in problems[0]


def _without_triggers(table: str, statement: str) -> None:
    """Tamper as someone with the database's keys would: the triggers off, the row changed."""
    from types import SimpleNamespace

    from audit import triggers

    triggers.remove(SimpleNamespace(connection=connection), [table])
    with connection.cursor() as cursor:
        cursor.execute(statement)
    triggers.install(SimpleNamespace(connection=connection), [table])


def test_rows_written_together_read_back_as_sent_and_verify():
    """Two rows or more go in one COPY on PostgreSQL, the values prepared by the writer
    instead of Django: every kind of value (absent figures, text beyond ASCII, nested JSON,
    a figure with 9+ decimals) reads back as sent, and the chain verifies."""
    bare = {"id": "20260105143000125::a", "activity_type": "ZZNEW"}
    full = activity(
        2,
        qty="-0.000000000123456789012345",
        price="1E+3",
        description="Frais \u00e9\u2603 \\ \t tab",
        details={"nested": [1, 2.5, None, {"k": "v"}]},
    )
    assert activities_record(account="default", activities=parsed(bare, full)).new == 2
    first, second = AccountActivity.objects.order_by("id")
    assert (first.qty, first.price, first.net_amount, first.occurred_at) == (None,) * 4
    assert (first.symbol, first.sub_type, first.raw) == ("", "", bare)
    assert (second.qty, second.price) == (Decimal("-0.000000000123456789012345"), Decimal(1000))
    assert second.description == "Frais \u00e9\u2603 \\ \t tab" and second.raw == full
    assert second.occurred_at.isoformat() == "2026-01-05T14:30:00.123456+00:00"
    assert audit_verify(trigger="command", processes=1).ok


def test_the_writers_row_fields_are_the_models():
    from ledger.services import ROW_FIELDS

    assert tuple(f.attname for f in AccountActivity._meta.concrete_fields) == ROW_FIELDS


def test_the_writers_row_is_the_one_the_constructor_builds():
    from django.db.models.signals import post_init, pre_init
    from django.utils import timezone

    from ledger.services import ROW_FIELDS, _row

    # The writer skips the constructor's signals: it may only while nobody listens to them.
    assert not pre_init.has_listeners(AccountActivity)
    assert not post_init.has_listeners(AccountActivity)
    (fee,) = parsed(activity(1, activity_type="CFEE", qty="-0.000000000123456789", symbol="BTCUSD"))
    now = timezone.now()
    built = _row("desk", fee, now)
    values = [getattr(built, name) for name in ROW_FIELDS]
    constructed = AccountActivity(*values)
    assert type(built) is AccountActivity
    assert values == [getattr(constructed, name) for name in ROW_FIELDS]
    assert (built._state.adding, built._state.db) == (True, None)
    assert values[3:6] == ["desk", fee.id, "CFEE"] and values[-1] == now
