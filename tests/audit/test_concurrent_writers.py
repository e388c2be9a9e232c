"""Four worker processes appending events at once leave one linear, valid chain.

Real OS processes (fork), each with its own database connection, released together; each
appends single events and batches through the order events' writer.
"""

import itertools
import multiprocessing

import pytest
from django.db import connection, connections

from audit.services import audit_verify
from orders.models import OrderEvent
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)
WORKERS = 4
SINGLES = 60
BATCHES = 10
BATCH = 20


def _writer(attempt_id: int, worker: int, start, done) -> None:
    from orders.models import OrderAttempt
    from orders.services.events import order_event_build, order_event_record, order_events_append

    connections.close_all()  # never share the parent's socket
    attempt = OrderAttempt.objects.get(pk=attempt_id)
    start.wait(timeout=30)
    for i in range(SINGLES):
        order_event_record(attempt=attempt, kind="lookup", message=f"w{worker} single {i}")
        if i % (SINGLES // BATCHES) == 0:
            order_events_append(
                order_event_build(attempt=attempt, kind="response", message=f"w{worker} b{i}.{j}")
                for j in range(BATCH)
            )
    connections.close_all()
    done.put(worker)


def test_four_processes_writing_at_once_leave_one_valid_chain():
    attempt = factories.order_attempt()
    connections.close_all()
    context = multiprocessing.get_context("fork")
    start, done = context.Event(), context.Queue()
    workers = [
        context.Process(target=_writer, args=(attempt.pk, n, start, done)) for n in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * WORKERS
    assert sorted(done.get(timeout=5) for _ in workers) == list(range(WORKERS))

    expected = WORKERS * (SINGLES + BATCHES * BATCH)
    assert OrderEvent.objects.count() == expected
    rows = list(OrderEvent.objects.order_by("pk").values_list("prev_hash", "hash"))
    # Linear: each row names the one before it, no two rows share a predecessor.
    assert [prev for prev, _ in rows] == ["", *(h for _, h in rows[:-1])]
    if connection.vendor == "postgresql":
        # Interleaved for real (not one worker after another): PostgreSQL queues the advisory
        # lock's waiters; SQLite's busy handler may let one writer run many times in a row.
        writers = [
            m[:2] for m in OrderEvent.objects.order_by("pk").values_list("message", flat=True)
        ]
        switches = sum(a != b for a, b in itertools.pairwise(writers))
        assert switches > WORKERS
    result = audit_verify(trigger="command", processes=1)
    assert result.ok, result.verification.first_problem
