"""Audit chain costs on PostgreSQL: what chaining adds per event, and verify_audit over 3,000,000.

1. Append cost: the same events written through the chained writer (``order_event_record``,
   one event per transaction as the order cycle writes them, and ``order_events_append`` in
   batches of 500 as the sync writes them) and through a plain insert of the same rows in the
   same transactions (the naive way, unchained), in one run; prints microseconds per event and
   the difference. docs/design.md section 8: under 1 ms added per event.
2. ``verify_audit`` over 3,000,000 chained events (1,000,000 attempts with three events each,
   their hashes computed in Python with the chain's own function and loaded with COPY), with
   one process and with one per core. docs/design.md section 8: under 30 s.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/brokerops_bench_audit \\
    ./dev python tests/benchmarks/audit_bench.py [--events 3000000] [--appends 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks._support import FILL_ATTEMPTS_SQL, peak_rss_mb, setup_django


def append_cost(appends: int) -> None:
    from django.db import models, transaction

    from orders.models import OrderEvent
    from orders.services.events import order_event_build, order_event_record, order_events_append
    from tests import factories

    attempt = factories.order_attempt()
    payload = {"id": str(uuid.uuid4()), "status": "filled", "qty": "10", "symbol": "AAPL"}
    plain = models.QuerySet(OrderEvent)  # the writer's insert without the chain

    def unchained_one(i: int) -> None:
        with transaction.atomic():
            event = order_event_build(
                attempt=attempt, kind="response", message=f"{i}", payload=payload
            )
            plain.bulk_create([event])

    def chained_one(i: int) -> None:
        order_event_record(attempt=attempt, kind="response", message=f"{i}", payload=payload)

    def unchained_batch(i: int) -> None:
        with transaction.atomic():
            plain.bulk_create(
                order_event_build(
                    attempt=attempt, kind="status_changed", message=f"{i}.{j}", payload=payload
                )
                for j in range(500)
            )

    def chained_batch(i: int) -> None:
        order_events_append(
            order_event_build(
                attempt=attempt, kind="status_changed", message=f"{i}.{j}", payload=payload
            )
            for j in range(500)
        )

    def per_event_us(write, count: int, per_call: int) -> float:
        write(-1)  # warm up
        started = time.perf_counter()
        for i in range(count):
            write(i)
        return (time.perf_counter() - started) / (count * per_call) * 1e6

    batches = max(4, appends // 100)
    # Interleave the two ways in rounds so neither gets the warmer cache or the emptier table.
    rounds = 4
    singles = {"chained": 0.0, "unchained": 0.0}
    bulk = {"chained": 0.0, "unchained": 0.0}
    for _ in range(rounds):
        singles["unchained"] += per_event_us(unchained_one, appends // rounds, 1) / rounds
        singles["chained"] += per_event_us(chained_one, appends // rounds, 1) / rounds
        bulk["unchained"] += per_event_us(unchained_batch, batches // rounds, 500) / rounds
        bulk["chained"] += per_event_us(chained_batch, batches // rounds, 500) / rounds
    print(f"append cost ({OrderEvent.objects.count():,} events written)")
    for name, figures in (("one event per transaction", singles), ("batches of 500", bulk)):
        added = figures["chained"] - figures["unchained"]
        print(
            f"  {name}: unchained {figures['unchained']:.0f} us/event, chained "
            f"{figures['chained']:.0f} us/event, added {added:.0f} us/event "
            f"({added / 1000:.3f} ms; bar < 1 ms)"
        )


def fill(events: int) -> float:
    """``events`` chained events over ``events // 3`` attempts, loaded with COPY."""
    from django.db import connection

    from audit.chain import CHAINS_BY_NAME, row_hash

    columns = CHAINS_BY_NAME["order_events"].fields
    attempts = events // 3
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE orders_orderevent, orders_orderattempt RESTART IDENTITY CASCADE")
        cursor.execute(FILL_ATTEMPTS_SQL, {"n": attempts})
        cursor.execute("SELECT min(id) FROM orders_orderattempt")
        first = cursor.fetchone()[0]
    base = datetime(2026, 11, 1, tzinfo=UTC)
    kinds = (("created", 200), ("request_sent", None), ("response", 200))
    prev = ""
    raw = connection.connection  # psycopg 3
    with raw.cursor() as cursor:
        names = ", ".join((*columns, "prev_hash", "hash"))
        with cursor.copy(f"COPY orders_orderevent ({names}) FROM STDIN") as copy:
            for n in range(events):
                attempt_id = first + n // 3
                kind, status = kinds[n % 3]
                payload = (
                    {
                        "id": f"{attempt_id:032x}",
                        "status": "filled",
                        "qty": "1",
                        "filled_avg_price": "187.25",
                        "symbol": "AAPL",
                    }
                    if kind == "response"
                    else {}
                )
                values = {
                    "attempt_id": attempt_id,
                    "kind": kind,
                    "created_at": base + timedelta(microseconds=n * 1000),
                    "status_from": "",
                    "status_to": "",
                    "http_status": status,
                    "message": f"{kind} for attempt {attempt_id}",
                    "payload": payload,
                    "actor": "bench",
                }
                digest = row_hash(prev, values)
                row = [values[c] for c in columns]
                row[7] = json.dumps(payload)
                copy.write_row((*row, prev, digest))
                prev = digest
    raw.commit() if not raw.autocommit else None
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_orderevent")
    return time.perf_counter() - started


def verify(processes: int) -> None:
    from audit.services import audit_verify

    started = time.perf_counter()
    result = audit_verify(trigger="command", processes=processes)
    took = time.perf_counter() - started
    rows = result.verification.rows_checked
    label = "one process" if processes == 1 else f"{processes} processes"
    print(
        f"  verify_audit, {label}: {took:.1f} s for {rows:,} rows ({rows / took:,.0f} rows/s), "
        f"{'intact' if result.ok else 'BROKEN: ' + result.verification.first_problem}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--appends", type=int, default=2000)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        parser.error("set DATABASE_URL to a PostgreSQL database (the bars are for PostgreSQL)")
    setup_django("audit")
    append_cost(args.appends)
    took = fill(args.events)
    print(f"filled {args.events:,} chained events in {took:.0f} s (COPY; not part of the bar)")
    print(f"verify_audit over {args.events:,} events (bar < 30 s)")
    verify(1)
    verify(os.cpu_count() or 1)
    print(f"peak RSS of this process {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
