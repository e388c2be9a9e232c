"""The sync's read-ahead thread (ledger.reader) and the writer's look-up of stored ids: a
failure inside the thread reaches the writer at once (never a sync waiting forever), what came
before it stays stored, the thread's calls are counted as the caller's, the thread is gone when
the sync returns, and the look-up of stored ids probes the unique index whatever the planner
knows of the table."""

import json
import threading

import pytest
from django.db import connection, connections

from brokerops.alpaca.parsing import parse_activities
from ledger.models import AccountActivity
from ledger.services import activities_record, activities_sync
from tests.ledger.conftest import PATH, Pages, activity

pytestmark = pytest.mark.django_db

WAIT_S = 30  # a hang fails the test instead of stalling the suite


def sync_in_thread(**kwargs):
    """``activities_sync(**kwargs)`` in a thread, given up to WAIT_S: (result, error, alive)."""
    box: dict = {}

    def run():
        try:
            box["result"] = activities_sync(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - the test asserts on it
            box["error"] = exc
        finally:
            connections.close_all()

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(WAIT_S)
    return box.get("result"), box.get("error"), worker.is_alive()


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "activities-reader"]


class FailsAfterFirstPage:
    """The real gateway, whose read raises (a bug, not a broker error) after its first page."""

    def __init__(self, gateway):
        self.gateway = gateway

    def __getattr__(self, name):
        return getattr(self.gateway, name)

    def read_activities(self, *, on_page, **kwargs):
        def first_then_fail(page):
            on_page(page)
            raise KeyError("a bug in the read")

        return self.gateway.read_activities(on_page=first_then_fail, **kwargs)


@pytest.mark.django_db(transaction=True)  # the sync runs in a thread of its own
def test_a_read_raising_inside_the_reader_fails_the_sync_at_once_keeping_the_pages_before(
    over_scripted, scripted
):
    rows = [activity(n) for n in range(250)]
    scripted.answer("GET", PATH, Pages(rows))
    result, error, alive = sync_in_thread(gateway=FailsAfterFirstPage(over_scripted))
    assert not alive and result is None
    assert isinstance(error, KeyError) and "a bug in the read" in str(error)
    stored = AccountActivity.objects.order_by("id").values_list("activity_id", flat=True)
    assert list(stored) == [row["id"] for row in rows[:100]]
    assert not reader_threads()


class WithoutCountingAs:
    """A test double of the gateway without ``count_calls_as``: what the reader calls first."""

    def __init__(self, gateway):
        self.count_calls = gateway.count_calls
        self.read_activities = gateway.read_activities


@pytest.mark.django_db(transaction=True)
def test_a_gateway_lacking_what_the_reader_calls_fails_the_sync_without_a_hang(
    over_scripted, scripted
):
    scripted.answer("GET", PATH, Pages([activity(1)]))
    result, error, alive = sync_in_thread(gateway=WithoutCountingAs(over_scripted))
    assert not alive and result is None
    assert isinstance(error, AttributeError) and "count_calls_as" in str(error)
    assert not reader_threads()


def test_the_readers_calls_count_in_every_scope_of_the_caller(over_scripted, scripted):
    """As a reconciliation run counts its calls: its own scope around the sync's."""
    scripted.answer("GET", PATH, Pages([activity(n) for n in range(150)]))
    with over_scripted.count_calls(current_thread_only=True) as run_calls:
        synced = activities_sync(gateway=over_scripted)
    assert synced.api_calls == run_calls.total == 2 == len(scripted.calls("GET", PATH))


def test_a_refused_activity_stops_the_reader_thread(over_scripted, scripted):
    rows = [activity(n) for n in range(100)] + [activity(100, symbol="S" * 65)]
    rows += [activity(n) for n in range(101, 2000)]
    scripted.answer("GET", PATH, Pages(rows))
    result = activities_sync(gateway=over_scripted)
    assert "symbol longer than 64" in result.stop_reason and result.new == 100
    assert not reader_threads()
    # It read at most a few pages past the refused one: never the whole account.
    assert len(scripted.calls("GET", PATH)) < 10


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_the_look_up_of_stored_ids_probes_the_unique_index_without_statistics():
    """A first read fills the table faster than autovacuum analyses it: asked as ``IN (...)``,
    the planner then scanned the account's every row for each page (the first read grew with
    the square of its size)."""
    activities_record(
        account="default", activities=parse_activities([activity(n) for n in range(3000)])
    )
    looked_up: list[tuple[str, object]] = []

    def capture(execute, sql, params, many, context):
        if "activity_id" in sql and sql.lstrip().upper().startswith("SELECT"):
            looked_up.append((sql, params))
        return execute(sql, params, many, context)

    page = parse_activities([activity(n) for n in range(2950, 3050)])
    with connection.execute_wrapper(capture):
        assert activities_record(account="default", activities=page).new == 50
    assert len(looked_up) == 1
    sql, params = looked_up[0]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    scans = list(_scans(plan[0]["Plan"]))
    assert scans and all(index == "ledger_activity_once" for index in scans), scans


def _scans(node):
    """The index (or None for a sequential scan) of every scan of the activities table."""
    if node.get("Relation Name") == "ledger_accountactivity":
        yield node.get("Index Name")
    for child in node.get("Plans", ()):
        yield from _scans(child)
