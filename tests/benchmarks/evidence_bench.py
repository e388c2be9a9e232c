"""Evidence and access (docs/design.md sections 8 and 19): what recording an access adds to a
page, an evidence pack of one order with 100 events, and of a day of 10,000 attempts (each with
3 chained events and a fill) with the process's peak RSS before and after (constant memory: the
pack's rows stream through; the peak must not grow with the rows).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/brokerops_bench_evidence \\
    ./dev python tests/benchmarks/evidence_bench.py [--attempts 10000] [--views 300]

Bars: an access adds under 5 ms to a page; one order under 1 s; the day under 30 s.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks._support import peak_rss_mb, setup_django

KEY = "evidence-bench-key"
CHUNK = 1000


def fill_day(day: datetime, attempts: int) -> None:
    """``attempts`` attempts of one day, each with 3 events and a fill, written in chunks through
    the chain writer (so the hashes are real)."""
    from audit.chain import chain_append
    from orders.models import OrderAttempt, OrderEvent, OrderExecution

    step = timedelta(seconds=86000 / attempts)
    for start in range(0, attempts, CHUNK):
        rows = [
            OrderAttempt(
                account="default",
                client_order_id=f"bo-day{i}-entry",
                signal_id=f"day{i}",
                symbol="AAPL",
                side="buy",
                order_type="market",
                qty=Decimal(1),
                status="filled",
                created_at=day + step * i,
                updated_at=day + step * i,
            )
            for i in range(start, min(start + CHUNK, attempts))
        ]
        OrderAttempt.objects.bulk_create(rows)
        events, fills = [], []
        for attempt in rows:
            at = attempt.created_at
            for n, (kind, status) in enumerate(
                (("created", "created"), ("submitted", "accepted"), ("status_changed", "filled"))
            ):
                events.append(
                    OrderEvent(
                        attempt=attempt,
                        kind=kind,
                        status_to=status,
                        message=f"-{n} as the broker said",
                        payload={"qty": "1", "n": n},
                        actor="bench",
                        created_at=at + timedelta(milliseconds=n),
                    )
                )
            fills.append(
                OrderExecution(
                    execution_id=f"x-{attempt.client_order_id}",
                    attempt=attempt,
                    event="fill",
                    qty=Decimal(1),
                    price=Decimal("187.25"),
                    position_qty=Decimal(1),
                    executed_at=at,
                    received_at=at + timedelta(milliseconds=5),
                )
            )
        chain_append(events)
        chain_append(fills)
        del rows, events, fills
        gc.collect()


def one_order(events: int) -> str:
    from audit.chain import chain_append
    from orders.models import OrderAttempt, OrderEvent

    attempt = OrderAttempt.objects.create(
        client_order_id="bo-hundred-entry",
        symbol="MSFT",
        side="buy",
        order_type="market",
        qty=Decimal(5),
    )
    chain_append(
        OrderEvent(
            attempt=attempt,
            kind="status_changed",
            message=f"step {n}",
            actor="bench",
            payload={"n": n},
        )
        for n in range(events)
    )
    return attempt.client_order_id


def pack_seconds(**scope_fields) -> tuple[float, int]:
    from evidence.pack import evidence_pack_write
    from evidence.scope import Scope

    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        evidence_pack_write(scope=Scope(**scope_fields), out=out, created_by="bench")
        elapsed = time.perf_counter() - started
        size = out.tell()
    return elapsed, size


def access_cost(views: int, client_order_id: str) -> None:
    """The timeline page timed with and without its access record (medians), and the record
    alone."""
    from django.contrib.auth.models import User
    from django.test import Client, RequestFactory

    import workspace.recording as recording
    from audit.access import access_record

    user = User.objects.create_superuser("bench", password="pw-bench-1")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    url = f"/admin/timeline/{client_order_id}/"

    def page_ms() -> list[float]:
        times = []
        for _ in range(views):
            started = time.perf_counter()
            assert client.get(url, {"q": "x"}).status_code == 200
            times.append((time.perf_counter() - started) * 1000)
        return times

    page_ms()  # warm up
    recorded = page_ms()
    real = recording.access_record
    recording.access_record = lambda **kw: None
    try:
        bare = page_ms()
    finally:
        recording.access_record = real
    request = RequestFactory().get(url, {"q": "x"})
    request.user = user
    alone = []
    for _ in range(views):
        started = time.perf_counter()
        access_record(request=request, what="timeline", object_id=client_order_id)
        alone.append((time.perf_counter() - started) * 1000)
    p50 = statistics.median
    print(
        f"access: timeline page p50 {p50(recorded):.2f} ms recorded, {p50(bare):.2f} ms not:"
        f" {p50(recorded) - p50(bare):.2f} ms added; one record alone p50 {p50(alone):.2f} ms,"
        f" p95 {statistics.quantiles(alone, n=20)[18]:.2f} ms ({views} views; bar 5 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=10_000)
    parser.add_argument("--views", type=int, default=300)
    args = parser.parse_args()
    os.environ["AUDIT_HMAC_KEY"] = KEY
    setup_django("evidence")
    from django.conf import settings

    from audit.services import audit_verify, chain_heads_record

    print(f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}")
    coid = one_order(100)
    day = datetime(2026, 3, 2, tzinfo=UTC)
    fill_day(day, args.attempts)
    from django.db import connection

    if connection.vendor == "postgresql":
        # Statistics, as autovacuum keeps them on a live database: right after a bulk load the
        # planner believes the tables empty and joins a day's events to its attempts with a
        # nested loop that re-reads the day per attempt (12.8 s instead of 2 s at 10,000).
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    chain_heads_record(recorded_by="bench")
    audit_verify(trigger="command", processes=1)
    access_cost(args.views, coid)

    seconds, size = pack_seconds(order=coid)
    print(f"evidence, one order with 100 events: {seconds:.3f} s, {size / 1024:.0f} KiB (bar 1 s)")
    gc.collect()
    before = peak_rss_mb()
    seconds, size = pack_seconds(start=day.date(), end=day.date(), account="default")
    after = peak_rss_mb()
    print(
        f"evidence, a day of {args.attempts:,} attempts ({args.attempts * 3:,} events,"
        f" {args.attempts:,} fills): {seconds:.2f} s, {size / 1024 / 1024:.1f} MiB zip;"
        f" peak RSS {before:.0f} MB before, {after:.0f} MB after (bar 30 s, constant memory)"
    )


if __name__ == "__main__":
    main()
