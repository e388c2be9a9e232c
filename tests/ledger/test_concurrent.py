"""Two writers of one account at once (docs/design.md section 18.2): the same pages recorded by
two threads at once, and two syncs at once, leave each activity stored once and one valid chain
(threads with their own database connections; PostgreSQL in CI)."""

import threading

import pytest
from django.db import connections

from audit.services import audit_verify
from brokerops.alpaca.parsing import parse_activities
from ledger.models import AccountActivity
from ledger.services import activities_record, activities_sync
from tests.ledger.conftest import PATH, Pages, activity

pytestmark = pytest.mark.django_db(transaction=True)


def in_threads(work, count: int = 2) -> list:
    """``work(n)`` in ``count`` threads released together; their results (or failures)."""
    start = threading.Barrier(count)
    results: list = [None] * count

    def run(n: int) -> None:
        try:
            start.wait(timeout=10)
            results[n] = work(n)
        except Exception as exc:  # noqa: BLE001 - the test asserts there was none
            results[n] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_writers_of_the_same_pages_at_once_store_each_activity_once():
    pages = [parse_activities([activity(p * 50 + n) for n in range(50)]) for p in range(6)]

    def write(_: int) -> tuple[int, int]:
        new = skipped = 0
        for page in pages:
            recorded = activities_record(account="default", activities=page)
            new, skipped = new + recorded.new, skipped + recorded.already_stored
        return new, skipped

    results = in_threads(write)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(new for new, _ in results) == 300
    assert sum(skipped for _, skipped in results) == 300
    assert AccountActivity.objects.count() == 300
    ids = list(AccountActivity.objects.order_by("id").values_list("activity_id", flat=True))
    assert ids == sorted(ids)  # stored in booking order: the cursor stays the last id
    assert audit_verify(trigger="command", processes=1).ok


def test_two_syncs_of_one_account_at_once_never_duplicate(over_scripted, scripted, make_gateway):
    rows = [activity(n) for n in range(300)]
    pages = Pages(rows)

    loser_done = threading.Event()

    def held(query):
        # The sync holding the lock stays in its read until the other one has tried the lock
        # and given up: the two overlap by construction, not by timing.
        loser_done.wait(timeout=10)
        return pages(query)

    def sync(n: int):
        result = activities_sync(gateway=gateways[n])
        if result.skipped:
            loser_done.set()
        return result

    scripted.answer("GET", PATH, held)
    gateways = [over_scripted, make_gateway(base_url=scripted.url)]
    results = in_threads(sync)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.new for r in results) == 300
    assert [bool(r.skipped) for r in results].count(True) == 1  # the account's lock
    assert "holds the lock" in next(r.skipped for r in results if r.skipped)
    assert AccountActivity.objects.count() == 300
