"""The order timeline page with 1,000,000 attempts and 3,000,000 events on PostgreSQL.

Fills the trail with the fast fills of the other benchmarks (``admin_lookup_bench``'s attempts,
``audit_bench``'s chained events loaded with COPY), then, server side: 1,000,000 signal documents
in the local store, 100 runs, 200,000 mismatches (half naming an order, half a quantity mismatch
about three signals, with their ``MismatchSignal`` rows) and a repair outcome for a quarter of
them. Times ``/admin/timeline/<client_order_id>/`` through Django's test client as a compliance
user (rendering included) for random orders, and prints p50/p95, the query count and the time
spent in SQL, and the mismatch search by one signal of a multi-signal mismatch. docs/design.md
section 8: under 100 ms. ``--reuse`` times again over the data a previous run left.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/brokerops_bench_timeline \\
    ./dev python tests/benchmarks/timeline_bench.py [--events 3000000] [--lookups 50]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks._support import setup_django

# Rows of the account 'default' (the single account without ACCOUNTS_FILE): the account columns
# have no database default. Signals name none, as documents without an account field.
FILL_SIGNALS = """
INSERT INTO intent_localsignal (document_id, data, status, revision, created_at, updated_at)
SELECT 'sig' || i,
    jsonb_build_object('symbol', (ARRAY['AAPL','MSFT','SPY','TSLA','BTC/USD'])[1 + i %% 5],
        'side', 'buy', 'qty', 1, 'order_type', 'market', 'status', 'ACTIVE',
        'client_order_id', 'bo-sig' || i || '-entry', 'status_reason', 'filled at Alpaca',
        'created_at', to_char(now() - (i || ' seconds')::interval, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
    'ACTIVE', md5(i::text)::uuid, now(), now()
FROM generate_series(1, %(n)s) AS i
"""
FILL_RUNS = """
INSERT INTO reconciliation_reconciliationrun (account, trigger, requested_by_username, dry_run,
    status, started_at, finished_at, worker, positions_seen, orders_seen, signals_seen,
    mismatches_found, repairs_applied, api_calls, error, summary)
SELECT 'default', 'schedule', '', false, 'succeeded', now() - (r || ' minutes')::interval,
    now() - (r || ' minutes')::interval + interval '2 seconds', 'bench', 0, 0, 0, 0, 0, 3, '',
    '{}'::jsonb
FROM generate_series(1, 100) AS r
"""
# Mismatch i (1..n/2) names attempt 10*i; mismatch n/2+i is a quantity mismatch about the
# signals of attempts 10*i+1, 10*i+2, 10*i+3 (hashes left blank: no chain is verified here).
FILL_MISMATCHES = """
INSERT INTO reconciliation_mismatch (account, run_id, kind, severity, symbol, signal_id,
    client_order_id, alpaca_order_id, expected_qty, actual_qty, action, detail, created_at,
    prev_hash, hash)
SELECT 'default', (SELECT min(id) FROM reconciliation_reconciliationrun) + i %% 100,
    CASE WHEN half = 0 THEN 'ORDER_STATUS_DRIFT' ELSE 'QTY_MISMATCH' END, 'warning', 'AAPL',
    CASE WHEN half = 0 THEN 'sig' || (10 * i)
         ELSE 'sig' || (10 * i + 1) || ',sig' || (10 * i + 2) || ',sig' || (10 * i + 3) END,
    CASE WHEN half = 0 THEN 'bo-sig' || (10 * i) || '-entry' ELSE '' END, '',
    3, 2, CASE WHEN half = 0 THEN 'repair_started' ELSE 'flagged' END, 'bench',
    now() - (i || ' seconds')::interval, '', ''
FROM generate_series(1, %(n)s / 2) AS i CROSS JOIN (VALUES (0), (1)) AS h(half)
"""
FILL_MISMATCH_SIGNALS = """
INSERT INTO reconciliation_mismatchsignal (mismatch_id, signal_id, prev_hash, hash)
SELECT m.id, s.signal_id, '', ''
FROM reconciliation_mismatch m
CROSS JOIN LATERAL unnest(string_to_array(m.signal_id, ',')) AS s(signal_id)
WHERE m.signal_id <> ''
"""
FILL_OUTCOMES = """
INSERT INTO reconciliation_runevent (run_id, kind, status, mismatch_id, action, message, payload,
    actor, created_at, prev_hash, hash)
SELECT m.run_id, 'repair_outcome', '', m.id, 'attempt_status_updated', 'filled at Alpaca',
    '{}'::jsonb, 'reconciliation', m.created_at + interval '50 ms', '', ''
FROM reconciliation_mismatch m
WHERE m.kind = 'ORDER_STATUS_DRIFT' AND m.run_id % 2 = 0
"""


def fill(*, events: int, mismatches: int) -> None:
    from django.db import connection

    from tests.benchmarks.audit_bench import fill as fill_chained_events

    took = fill_chained_events(events)
    attempts = events // 3
    print(f"filled {attempts:,} attempts and {events:,} chained events in {took:.0f} s")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(FILL_SIGNALS, {"n": attempts})
        cursor.execute(FILL_RUNS)
        cursor.execute(FILL_MISMATCHES, {"n": mismatches})
        cursor.execute(FILL_MISMATCH_SIGNALS)
        cursor.execute(FILL_OUTCOMES)
        cursor.execute(
            "ANALYZE intent_localsignal; ANALYZE reconciliation_mismatch; "
            "ANALYZE reconciliation_mismatchsignal; ANALYZE reconciliation_runevent; "
            "ANALYZE orders_orderattempt; ANALYZE orders_orderevent"
        )
        cursor.execute("SELECT count(*) FROM reconciliation_mismatchsignal")
        relation = cursor.fetchone()[0]
    print(
        f"filled {attempts:,} signals, {mismatches:,} mismatches ({relation:,} signal rows) "
        f"and their outcomes in {time.perf_counter() - started:.0f} s"
    )


class _SqlClock:
    """Counts the queries of a block and the time spent in them."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--mismatches", type=int, default=200_000)
    parser.add_argument("--lookups", type=int, default=50)
    parser.add_argument("--reuse", action="store_true", help="skip the fill (data already there)")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database (the bar is for PostgreSQL)")
    if args.reuse:
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brokerops.settings")
        django.setup()
    else:
        setup_django("timeline")
        fill(events=args.events, mismatches=args.mismatches)

    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from tests import factories

    attempts = args.events // 3
    client = Client(HTTP_HOST="localhost")
    user = User.objects.filter(username="bench-compliance").first() or factories.staff_user(
        group="compliance", username="bench-compliance"
    )
    client.force_login(user)
    rng = random.Random(7)
    # Orders with a mismatch naming them (every 10th) and orders a multi-signal mismatch names.
    picks = [
        10 * rng.randint(1, args.mismatches // 2 - 1) + rng.choice((0, 1))
        for _ in range(args.lookups)
    ]
    picks = [min(p, attempts) for p in picks]
    client.get(reverse("order_timeline", kwargs={"client_order_id": "bo-sig1-entry"}))  # warm
    times, queries, sql_ms, entries = [], [], [], []
    for i in picks:
        url = reverse("order_timeline", kwargs={"client_order_id": f"bo-sig{i}-entry"})
        clock = _SqlClock()
        with connection.execute_wrapper(clock):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        queries.append(clock.count)
        sql_ms.append(clock.seconds * 1000)
        assert response.status_code == 200, (url, response.status_code)
        assert b"Request sent" in response.content and b"mismatch #" in response.content
        entries.append(response.content.count(b'class="timeline-entry'))

    search_ms = []
    listing = reverse("admin:reconciliation_mismatch_changelist")
    for _ in range(20):
        i = 10 * rng.randint(1, args.mismatches // 2 - 1) + 2
        started = time.perf_counter()
        response = client.get(listing, {"q": f"sig{i}"})
        search_ms.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200 and b"1 result" in response.content, i

    print(
        f"\ntimeline page ({len(times)} orders, {statistics.mean(entries):.1f} entries each): "
        f"p50 {statistics.median(times):.1f} ms, p95 {_percentile(times, 0.95):.1f} ms, "
        f"worst {max(times):.1f} ms (bar: < 100 ms); queries per page: "
        f"{min(queries)}-{max(queries)} (session and user included), in SQL p50 "
        f"{statistics.median(sql_ms):.1f} ms"
    )
    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.1f} / {load[1]:.1f} (2 cores)")
    print(
        f"mismatch search by one signal of a three-signal mismatch: p50 "
        f"{statistics.median(search_ms):.1f} ms, p95 {_percentile(search_ms, 0.95):.1f} ms"
    )


if __name__ == "__main__":
    main()
