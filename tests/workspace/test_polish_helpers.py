"""The workspace's shared helpers (issue 25, "the workspace, polished"): one definition of how a
time reads, statuses in words, the empty mark in CSV, the timeline's causal order, the zone."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django.utils.safestring import SafeString

from tests import factories
from workspace.cells import csv_cell, display_text_cell, text_cell
from workspace.display import json_summary, status_words, when
from workspace.timeline import TimelineEntry, causal_order
from workspace.zone import zone_named

AT = datetime(2026, 11, 25, 16, 48, 3, 120456, tzinfo=UTC)


def test_a_time_reads_to_the_millisecond_in_the_active_zone_with_the_zone_named():
    assert when(AT) == "2026-11-25 16:48:03.120 UTC"
    with timezone.override(zone_named("Europe/Paris")):
        assert when(AT) == "2026-11-25 17:48:03.120 CET"
    with timezone.override(zone_named("America/New_York")):
        assert when(AT + timedelta(days=-150)) == "2026-06-28 12:48:03.120 EDT"
    assert when(None) == "-"


@pytest.mark.parametrize(
    ("name", "known"),
    [
        ("Europe/Paris", True),
        ("UTC", True),
        ("", False),
        ("Not/AZone", False),
        ("../../etc/passwd", False),
        ("/etc/localtime", False),
        ("x" * 100, False),
    ],
)
def test_only_real_zone_names_are_taken_from_the_browser(name, known):
    assert (zone_named(name) is not None) is known


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("CLOSED_MANUAL", "closed by reconciliation"),
        ("SUBMITTED", "submitted to the broker"),
        ("partially_filled", "Partially filled"),
        ("rejected", "Rejected (by validation or the broker)"),
        ("pending_new", "pending new"),
        ("", "-"),
    ],
)
def test_status_codes_read_as_words(code, words):
    assert status_words(code) == words


def test_a_folded_block_is_summarised_in_words_never_by_its_keys():
    summary = json_summary({"by_action": {}, "by_kind": {}, "timings": {}}, "summary")
    assert summary == "Show the summary (3 fields)"
    assert "by_kind" not in summary and "keys" not in summary


@pytest.mark.parametrize(
    "empty", ["-", "-\t", "\t-", "\r-", SafeString("-"), SafeString("<b>-</b>")]
)
def test_the_empty_mark_is_an_empty_cell_never_a_neutralised_dash(empty):
    assert csv_cell(empty) == ""
    assert text_cell(empty) == "" or isinstance(empty, SafeString)


def test_text_starting_with_a_formula_character_is_still_neutralised():
    assert text_cell("-5") == "'-5" and csv_cell("-x") == "'-x" and csv_cell("=1+1") == "'=1+1"
    assert display_text_cell("-") == "" and text_cell("-") == ""


def _entry(seconds: float, source: str, stage: str, rank: int, seq: int = 0) -> TimelineEntry:
    return TimelineEntry(
        AT + timedelta(seconds=seconds),
        source,
        f"{source}@{seconds}",
        stage=stage,
        rank=rank,
        seq=seq,
    )


def test_a_fill_stamped_before_the_brokers_answer_follows_the_answer():
    entries = [
        _entry(0.000, "attempt", "ours", 1),
        _entry(0.010, "event", "ours", 2, seq=1),  # request sent
        _entry(0.250, "event", "answer", 2, seq=2),  # the broker's answer reaches us
        _entry(0.120, "fill", "fill", 3, seq=1),  # executed at the broker before that
        _entry(0.400, "event", "ours", 2, seq=3),  # status changed after the fill
        _entry(0.900, "signal", "created", 0),  # the writer's clock runs ahead
    ]
    ordered = [e.title for e in causal_order(entries)]
    assert ordered == [
        "signal@0.9",
        "attempt@0.0",
        "event@0.01",
        "event@0.25",
        "fill@0.12",
        "event@0.4",
    ]
    # Each keeps its own time.
    assert {e.title: e.at for e in causal_order(entries)}["fill@0.12"] == AT + timedelta(
        seconds=0.12
    )


def test_without_an_answer_or_a_clock_disagreement_the_order_is_the_time_order():
    entries = [
        _entry(2, "fill", "fill", 3),
        _entry(1, "event", "ours", 2),
        _entry(0, "signal", "created", 0),
    ]
    assert [e.title for e in causal_order(entries)] == ["signal@0", "event@1", "fill@2"]


@pytest.mark.django_db
def test_event_statuses_and_chain_names_read_as_words(admin_client):
    from audit.services import chain_heads_record

    attempt = factories.order_attempt()
    factories.order_event(attempt=attempt, status_from="open", status_to="partially_filled")
    chain_heads_record(recorded_by="test")
    events = admin_client.get("/admin/orders/orderevent/").content.decode()
    assert "Open at the broker" in events and "Partially filled" in events
    heads = admin_client.get("/admin/audit/chainhead/").content.decode()
    assert "order events" in heads and ">order_events<" not in heads
