"""The activities sync (docs/design.md section 18.2) through the real gateway: the paper broker
for Alpaca's shapes, a scripted server for hostile pages. Pages are stored as they arrive; a
read stopped early is recorded and the next sync goes on from the cursor; nothing is stored
twice."""

import logging
from decimal import Decimal

import pytest
from django.core.management import call_command

from brokerops.alpaca import BrokerUnavailable
from ledger.models import AccountActivity
from ledger.selectors import activity_cursor
from ledger.services import activities_sync
from tests.ledger.conftest import PATH, Pages, activity

pytestmark = pytest.mark.django_db


def stored_ids(account: str = "default") -> list[str]:
    return list(
        AccountActivity.objects.filter(account=account)
        .order_by("id")
        .values_list("activity_id", flat=True)
    )


def test_a_first_sync_stores_every_page_and_a_second_makes_one_call(over_scripted, scripted):
    rows = [activity(n) for n in range(250)]
    scripted.answer("GET", PATH, Pages(rows))
    first = activities_sync(gateway=over_scripted)
    assert (first.new, first.pages, first.api_calls, first.complete) == (250, 3, 3, True)
    assert first.cursor_before is None and first.cursor == rows[-1]["id"]
    assert stored_ids() == [row["id"] for row in rows]
    caught_up = activities_sync(gateway=over_scripted)
    assert (caught_up.new, caught_up.api_calls, caught_up.complete) == (0, 1, True)
    assert scripted.calls("GET", PATH)[-1]["page_token"] == rows[-1]["id"]


def test_a_crash_after_the_first_page_keeps_it_and_the_next_sync_goes_on(
    over_scripted, scripted, caplog
):
    rows = [activity(n) for n in range(230)]
    scripted.answer("GET", PATH, Pages(rows, fail_after=1))
    with caplog.at_level(logging.WARNING, "ledger"), pytest.raises(BrokerUnavailable):
        activities_sync(gateway=over_scripted)
    assert stored_ids() == [row["id"] for row in rows[:100]]
    assert "the read failed after 100 new row(s) were stored" in caplog.text
    scripted.answer("GET", PATH, Pages(rows))
    resumed = activities_sync(gateway=over_scripted)
    assert scripted.calls("GET", PATH)[2]["page_token"] == rows[99]["id"]
    assert (resumed.new, resumed.already_stored, resumed.complete) == (130, 0, True)
    assert stored_ids() == [row["id"] for row in rows]


def test_a_repeating_page_is_stored_up_to_there_and_recorded(over_scripted, scripted, caplog):
    first = [activity(n) for n in range(100)]
    repeat = first[50:] + [activity(100 + n) for n in range(50)]
    scripted.answer("GET", PATH, (200, first), (200, repeat))
    with caplog.at_level(logging.WARNING, "ledger"):
        result = activities_sync(gateway=over_scripted)
    assert stored_ids() == [row["id"] for row in first]
    assert not result.complete and f"repeats activity {first[50]['id']}" in result.stop_reason
    assert (result.new, result.pages) == (100, 2)
    assert "read stopped early" in caplog.text and "repeats activity" in caplog.text
    assert result.report()["stop_reason"] == result.stop_reason


def test_a_page_going_backwards_stores_nothing_of_it_and_the_next_sync_still_says_so(
    over_scripted, scripted
):
    good = [activity(n) for n in range(100, 150)]
    scripted.answer("GET", PATH, (200, good))
    assert activities_sync(gateway=over_scripted).new == 50
    scripted.answer("GET", PATH, (200, [activity(5), activity(200)]))  # ignores the cursor
    stopped = activities_sync(gateway=over_scripted)
    assert "page 1 goes backwards" in stopped.stop_reason and stopped.new == 0
    assert stored_ids() == [row["id"] for row in good]
    assert stopped.cursor == good[-1]["id"]


def test_unknown_types_and_long_decimals_are_stored(over_scripted, scripted):
    rows = [
        activity(1, activity_type="ZZNEW", qty="0.0000000001234"),
        activity(2, activity_type="SPLIT", activity_sub_type="QQSPLIT", qty="-12.3456789012"),
    ]
    scripted.answer("GET", PATH, (200, rows))
    assert activities_sync(gateway=over_scripted).complete
    unknown, split = AccountActivity.objects.order_by("id")
    assert (unknown.activity_type, unknown.qty) == ("ZZNEW", Decimal("0.0000000001234"))
    assert (split.sub_type, split.qty) == ("QQSPLIT", Decimal("-12.3456789012"))


def test_an_activity_the_table_cannot_hold_stops_the_read_recorded(over_scripted, scripted):
    rows = [activity(n) for n in range(100)] + [activity(100, order_id="o" * 200)]
    scripted.answer("GET", PATH, Pages(rows))
    result = activities_sync(gateway=over_scripted)
    assert not result.complete and "order_id longer than 128" in result.stop_reason
    assert (result.new, result.pages) == (100, 2)
    assert activity_cursor(account="default") == rows[99]["id"]


def test_the_paper_brokers_activities_sync_with_alpacas_shapes(broker, make_gateway):
    broker.seed_position("AAPL", 10, "100")
    broker.corporate_action("split", symbol="AAPL", new_rate=4, old_rate=1)
    gateway = make_gateway()
    result = activities_sync(gateway=gateway)
    assert result.complete and result.new == len(broker.activities()) >= 2
    legs = AccountActivity.objects.filter(activity_type="SPLIT").order_by("id")
    assert [(a.symbol, a.qty) for a in legs] == [("AAPL", Decimal(-10)), ("AAPL", Decimal(40))]
    assert [a.as_activity().leg for a in legs] == ["REMOVE", "ADD"]


def test_the_command_syncs_and_prints_a_summary(over_scripted, scripted, monkeypatch, capsys):
    import ledger.services as services

    rows = [activity(n) for n in range(3)]
    scripted.answer("GET", PATH, (200, rows))
    monkeypatch.setattr(services, "broker_gateway", lambda name: over_scripted)
    call_command("activities")
    out = capsys.readouterr().out
    assert out.startswith("account default: new=3 already_stored=0 pages=1 api_calls=1")
    assert "complete=true" in out
    call_command("activities", "--json")
    import json

    report = json.loads(capsys.readouterr().out)
    assert (report["account"], report["new"], report["api_calls"]) == ("default", 0, 1)


def test_an_unknown_account_exits_2_naming_the_known_ones():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no account 'nope'") as caught:
        call_command("activities", "--account", "nope")
    assert caught.value.returncode == 2


def test_the_task_runs_the_sync_of_its_account(over_scripted, scripted, monkeypatch):
    import ledger.services as services
    from ledger.tasks import activities_sync_task

    scripted.answer("GET", PATH, (200, [activity(1)]))
    monkeypatch.setattr(services, "broker_gateway", lambda name: over_scripted)
    report = activities_sync_task.apply(kwargs={"account": "default"}).get()
    assert (report["account"], report["new"], report["complete"]) == ("default", 1, True)
