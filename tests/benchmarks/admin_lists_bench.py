"""The audit lists at 1,000,000 attempts and 3,000,000 events on PostgreSQL: pages and CSV export.

Fills the audit tables (the attempts and chained events of ``audit_bench.fill``, runs and
mismatches server side), then, as a ``compliance`` user through Django's test client:

(a) each unsearched audit list page (attempts, events, mismatches, runs), rendering included:
    p50/p95 in ms and the queries per page, first with Django's exact ``COUNT(*)`` paginator
    (before), then with the audit lists' estimated count (after). docs/design.md section 8: under
    100 ms.
(b) the CSV export of the 3,000,000 events, the streamed response consumed in this process:
    rows/s and the RSS of the process doing it (a fresh one, sampled while streaming, and its
    peak). docs/design.md section 8:
    50,000 rows/s or more, under 200 MB.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/brokerops_bench_lists \\
    ./dev python tests/benchmarks/admin_lists_bench.py [--events 3000000] [--runs 10000] \\
        [--mismatches 500000] [--requests 40] [--skip-export] [--keep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks._support import peak_rss_mb, setup_django

# Rows of the account 'default' (the single account without ACCOUNTS_FILE): the account columns
# have no database default.
FILL_RUNS_SQL = """
INSERT INTO reconciliation_reconciliationrun (account, trigger, requested_by_username, dry_run,
    status, started_at, finished_at, worker, positions_seen, orders_seen, signals_seen,
    mismatches_found, repairs_applied, api_calls, error, summary)
SELECT 'default', 'schedule', '', false, 'succeeded', now() - (i || ' minutes')::interval,
    now() - (i || ' minutes')::interval + interval '2 seconds', 'bench:1', 100, 200, 100, 50, 0,
    3, '', '{}'::jsonb
FROM generate_series(1, %(n)s) AS i
"""

FILL_MISMATCHES_SQL = """
INSERT INTO reconciliation_mismatch (account, run_id, kind, severity, symbol, signal_id,
    client_order_id, alpaca_order_id, expected_qty, actual_qty, action, detail, created_at,
    prev_hash, hash)
SELECT 'default', r.first + i %% %(runs)s,
    (ARRAY['ORPHAN_POSITION','UNTRACKED_POSITION','QTY_MISMATCH','SIDE_MISMATCH',
           'ORDER_NOT_FOUND','ORDER_STATUS_DRIFT','UNKNOWN_ORDER','INVALID_SIGNAL'])[1 + i %% 8],
    'warning', (ARRAY['AAPL','MSFT','SPY','TSLA','BTCUSD'])[1 + i %% 5], 'sig' || i,
    'bo-sig' || i || '-entry', '', 10, 7.5, 'flagged', '', now() - (i || ' seconds')::interval,
    '', ''
FROM generate_series(1, %(n)s) AS i,
    (SELECT min(id) AS first FROM reconciliation_reconciliationrun) AS r
"""

TABLES = (
    "orders_orderattempt",
    "orders_orderevent",
    "reconciliation_reconciliationrun",
    "reconciliation_mismatch",
)
LISTS = [
    ("attempts", "orders", "orderattempt"),
    ("events", "orders", "orderevent"),
    ("mismatches", "reconciliation", "mismatch"),
    ("runs", "reconciliation", "reconciliationrun"),
]


def fill(*, events: int, runs: int, mismatches: int) -> None:
    """``events // 3`` attempts with three chained events each (``audit_bench.fill``: COPY, the
    chain's hashes computed in Python), then runs and mismatches server side."""
    from django.db import connection

    from tests.benchmarks.audit_bench import fill as fill_attempts_and_events

    took = fill_attempts_and_events(events)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(FILL_RUNS_SQL, {"n": runs})
        cursor.execute(FILL_MISMATCHES_SQL, {"n": mismatches, "runs": runs})
        for table in TABLES:
            cursor.execute(f"VACUUM ANALYZE {table}")
        counts = {}
        for table in TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (fixed names)
            counts[table] = cursor.fetchone()[0]
    print(
        f"filled {counts['orders_orderattempt']:,} attempts, {counts['orders_orderevent']:,} "
        f"chained events ({took:.0f} s), {counts['reconciliation_reconciliationrun']:,} runs, "
        f"{counts['reconciliation_mismatch']:,} mismatches "
        f"({time.perf_counter() - started:.0f} s); not part of any bar"
    )


def time_list(
    client, url: str, requests: int
) -> tuple[list[float], list[float], list[tuple[float, str]]]:
    """Wall and CPU (this process) times of ``requests`` GETs of ``url`` after 3 warm-ups, and
    the queries of one more page with their times."""
    from django.db import connection

    for _ in range(3):
        assert client.get(url).status_code == 200
    times, cpu = [], []
    for _ in range(requests):
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        assert response.status_code == 200
    queries: list[tuple[float, str]] = []

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries.append(((time.perf_counter() - started) * 1000, sql))

    with connection.execute_wrapper(timed):
        assert client.get(url).status_code == 200
    return times, cpu, queries


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def list_pages(client, requests: int) -> None:
    from django.apps import apps
    from django.contrib import admin
    from django.core.paginator import Paginator
    from django.urls import reverse

    from workspace.pagination import EstimatedCountPaginator

    print(f"\n(a) unsearched audit list pages, {requests} requests each (bar: < 100 ms)")
    for label, app, model in LISTS:
        url = reverse(f"admin:{app}_{model}_changelist")
        model_admin = admin.site.get_model_admin(apps.get_model(app, model))
        figures = {}
        for way, paginator in (("before", Paginator), ("after", EstimatedCountPaginator)):
            model_admin.paginator = paginator
            figures[way] = time_list(client, url, requests)
        del model_admin.paginator  # back to the class's
        for way, (times, cpu, queries) in figures.items():
            name = "exact COUNT(*)" if way == "before" else "estimated count"
            database = sum(ms for ms, _ in queries)
            slowest = max(queries)
            print(
                f"  {label:<10} {way:<6} ({name}): wall p50 {statistics.median(times):6.1f} ms, "
                f"p95 {percentile(times, 0.95):6.1f} ms; this process's CPU p50 "
                f"{statistics.median(cpu):5.1f} ms; {len(queries)} queries, {database:5.1f} ms "
                f"in all, slowest {slowest[0]:.1f} ms {' '.join(slowest[1].split())[:50]}..."
            )
    print(
        "  (wall time includes waiting for a share of the CPU on a busy machine; CPU + queries "
        "is what a page costs)"
    )


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def export_events_in_a_child() -> None:
    """Run :func:`export_events` in a fresh process, so its RSS is the export's alone (not the
    fill's)."""
    import multiprocessing as mp

    process = mp.get_context("spawn").Process(target=_export_child, args=(os.environ.copy(),))
    process.start()
    process.join()
    if process.exitcode != 0:
        sys.exit(f"the export process failed ({process.exitcode})")


def _export_child(environ: dict) -> None:
    os.environ.update(environ)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brokerops.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    client.force_login(User.objects.get(username="bench-compliance"))
    export_events(client)


def export_events(client) -> None:
    from django.urls import reverse

    from orders.models import OrderEvent

    total = OrderEvent.objects.count()
    print(f"\n(c) CSV export of the {total:,} events (bar: >= 50,000 rows/s, < 200 MB RSS)")
    before = rss_mb()
    started = time.perf_counter()
    response = client.get(reverse("admin:orders_orderevent_export"))
    first_byte = None
    lines = size = 0
    sampled = before
    for chunks, chunk in enumerate(response.streaming_content, 1):
        if first_byte is None:
            first_byte = time.perf_counter() - started
        lines += chunk.count(b"\n")
        size += len(chunk)
        if chunks % 25 == 0:
            sampled = max(sampled, rss_mb())
    took = time.perf_counter() - started
    rows = lines - 1  # the header
    assert rows == total, (rows, total)
    print(
        f"  {rows:,} rows, {size / 1e6:,.0f} MB of CSV in {took:.1f} s: {rows / took:,.0f} rows/s "
        f"(first byte after {first_byte * 1000:.0f} ms)"
    )
    print(
        f"  RSS of the exporting process: {before:.0f} MB before, at most {sampled:.0f} MB "
        f"while streaming (sampled), peak {peak_rss_mb():.0f} MB"
    )


def searched_pages(client, requests: int) -> None:
    """A broad search (one symbol of five: a fifth of every table) counted exactly vs counted up
    to the paginator's cap, in the same run."""
    from django.apps import apps
    from django.contrib import admin
    from django.urls import reverse

    print(f"\n(b) lists searched by a broad symbol ('msft'), {requests} requests each")
    for label, app, model in LISTS[:3]:
        url = reverse(f"admin:{app}_{model}_changelist") + "?q=msft"
        model_admin = admin.site.get_model_admin(apps.get_model(app, model))
        for way, cap in (("exact", 10**12), ("capped", model_admin.count_cap)):
            model_admin.count_cap = cap
            times, _, queries = time_list(client, url, requests)
            counts = [ms for ms, sql in queries if "COUNT(" in sql.upper()]
            print(
                f"  {label:<10} {way:<6}: wall p50 {statistics.median(times):7.1f} ms, p95 "
                f"{percentile(times, 0.95):7.1f} ms; count query {sum(counts):7.1f} ms; "
                f"{len(queries)} queries"
            )
        del model_admin.count_cap  # back to the class's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3_000_000, help="attempts: a third")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--mismatches", type=int, default=500_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument(
        "--keep", action="store_true", help="measure the tables a previous run filled (no fill)"
    )
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database (the bars are for PostgreSQL)")
    if args.keep:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brokerops.settings")
        import django

        django.setup()
    else:
        setup_django("admin-lists")
    from django.contrib.auth.models import User
    from django.test import Client

    from tests import factories

    if not args.keep:
        fill(events=args.events, runs=args.runs, mismatches=args.mismatches)
        factories.staff_user(group="compliance", username="bench-compliance")
    client = Client(HTTP_HOST="localhost")
    client.force_login(User.objects.get(username="bench-compliance"))
    list_pages(client, args.requests)
    searched_pages(client, max(5, args.requests // 4))
    if not args.skip_export:
        export_events_in_a_child()


if __name__ == "__main__":
    main()
