"""The breaks workspace at 100,000 breaks and 1,000,000 mismatches on PostgreSQL: the open breaks
list and a break's page (docs/design.md section 17: under 100 ms p50).

Fills runs, breaks and mismatches server side (SQL): a fifth of the breaks live (open,
acknowledged, proposed), the rest resolved or closed; a tenth of them of the account ``client``;
one break found by 100,000 runs' mismatches, the others sharing the rest. Then, through Django's
test client (rendering included), p50 and p99 of:

- the open breaks list as compliance lands on it (the live ones, soonest due first);
- the same list filtered by one kind;
- the list for a user granted the account ``client`` only;
- a break's page, for the break with 100,000 occurrences and for an ordinary one.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/brokerops_bench_breaks \\
    ./dev python tests/benchmarks/breaks_pages_bench.py [--breaks 100000] \\
        [--mismatches 1000000] [--requests 60] [--keep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks._support import setup_django
from tests.benchmarks.admin_lists_bench import FILL_RUNS_SQL, percentile, time_list

# i = 1 .. n: every fifth live (open, acknowledged, proposed in turn), the others resolved or
# closed; every tenth of the account 'client'; due times spread over the last and next days.
FILL_BREAKS_SQL = """
INSERT INTO reconciliation_break (account, key, kind, severity, symbol, signal_ids,
    client_order_id, state, disposition, reason, owner_username, proposed_by_username,
    approved_by_username, first_seen_at, last_seen_at, opened_at, due_at, closed_at,
    occurrences, first_run_id, last_run_id, needs_review, detail)
SELECT CASE WHEN i %% 10 = 0 THEN 'client' ELSE 'default' END, md5(i::text),
    (ARRAY['ORPHAN_POSITION','UNTRACKED_POSITION','QTY_MISMATCH','SIDE_MISMATCH',
           'ORDER_NOT_FOUND','ORDER_STATUS_DRIFT','UNKNOWN_ORDER','INVALID_SIGNAL'])[1 + i %% 8],
    (ARRAY['critical','warning','info'])[1 + i %% 3],
    (ARRAY['AAPL','MSFT','SPY','TSLA','BTCUSD'])[1 + i %% 5], jsonb_build_array('sig' || i),
    'bo-sig' || i || '-entry',
    CASE WHEN i %% 5 = 0 THEN (ARRAY['open','acknowledged','proposed'])[1 + (i / 5) %% 3]
         WHEN i %% 5 = 1 THEN 'closed' ELSE 'resolved' END,
    CASE WHEN i %% 5 = 1 THEN 'explained' ELSE '' END, '',
    CASE WHEN i %% 5 = 0 AND (i / 5) %% 3 > 0 THEN 'opal' || (i %% 7) ELSE '' END,
    '', '', now() - (i || ' minutes')::interval, now() - (i %% 600 || ' seconds')::interval,
    now() - (i || ' minutes')::interval, now() + ((50000 - i) || ' seconds')::interval,
    CASE WHEN i %% 5 = 0 THEN NULL ELSE now() END, 10, r.first + i %% %(runs)s,
    r.first + i %% %(runs)s, false, ''
FROM generate_series(1, %(n)s) AS i,
    (SELECT min(id) AS first FROM reconciliation_reconciliationrun) AS r
"""

# The first %(many)s mismatches are occurrences of the first break (a break a run finds every
# time for months), the others spread over every break.
FILL_MISMATCHES_SQL = """
INSERT INTO reconciliation_mismatch (account, run_id, kind, severity, symbol, signal_id,
    client_order_id, alpaca_order_id, expected_qty, actual_qty, action, detail, created_at,
    prev_hash, hash, break_case_id)
SELECT b.account, r.first + i %% %(runs)s, b.kind, b.severity, b.symbol, 'sig' || b.id,
    b.client_order_id, '', 10, 7.5, 'flagged', '', now() - (i || ' seconds')::interval, '', '',
    b.id
FROM generate_series(1, %(n)s) AS i
    JOIN (SELECT min(id) AS first FROM reconciliation_reconciliationrun) AS r ON true
    JOIN (SELECT min(id) AS first FROM reconciliation_break) AS f ON true
    JOIN reconciliation_break AS b
        ON b.id = CASE WHEN i <= %(many)s THEN f.first ELSE f.first + i %% %(breaks)s END
"""

TABLES = ("reconciliation_reconciliationrun", "reconciliation_break", "reconciliation_mismatch")


def fill(*, breaks: int, mismatches: int, runs: int, many: int) -> None:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(FILL_RUNS_SQL, {"n": runs})
        cursor.execute(FILL_BREAKS_SQL, {"n": breaks, "runs": runs})
        cursor.execute(
            FILL_MISMATCHES_SQL,
            {"n": mismatches, "runs": runs, "breaks": breaks, "many": many},
        )
        for table in TABLES:
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute(
            "SELECT count(*) FROM reconciliation_break WHERE state IN "
            "('open', 'acknowledged', 'proposed')"
        )
        live = cursor.fetchone()[0]
    print(
        f"filled {runs:,} runs, {breaks:,} breaks ({live:,} live), {mismatches:,} mismatches "
        f"({many:,} of one break) in {time.perf_counter() - started:.0f} s; not part of any bar"
    )


def users() -> None:
    from tests import factories
    from workspace.models import AccountGrant

    factories.staff_user(group="compliance", username="bench-compliance")
    scoped = factories.staff_user(group="compliance", username="bench-client")
    AccountGrant.objects.create(account="client", user=scoped, created_by="bench")


def measure(requests: int) -> None:
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    from reconciliation.models import Break

    lists = reverse("admin:reconciliation_break_changelist")
    first = Break.objects.order_by("id").first()
    ordinary = Break.objects.filter(state="open").order_by("id").last()
    cases = [
        ("list: live, due order (landing)", "bench-compliance", lists),
        ("list: live, one kind", "bench-compliance", lists + "?kind__exact=QTY_MISMATCH"),
        ("list: every state", "bench-compliance", lists + "?state=all"),
        ("list: user granted 'client'", "bench-client", lists),
        (
            f"page: {first.mismatches.count():,} occurrences",
            "bench-compliance",
            reverse("admin:reconciliation_break_change", args=[first.pk]),
        ),
        (
            f"page: {ordinary.mismatches.count():,} occurrences",
            "bench-compliance",
            reverse("admin:reconciliation_break_change", args=[ordinary.pk]),
        ),
    ]
    print(f"\n{requests} requests each, after 3 warm-ups (bar: p50 < 100 ms)")
    for label, username, url in cases:
        client = Client(HTTP_HOST="localhost")
        client.force_login(User.objects.get(username=username))
        times, cpu, queries = time_list(client, url, requests)
        database = sum(ms for ms, _ in queries)
        slowest = max(queries)
        print(
            f"  {label:<34} p50 {statistics.median(times):6.1f} ms, p99 "
            f"{percentile(times, 0.99):6.1f} ms; CPU p50 {statistics.median(cpu):5.1f} ms; "
            f"{len(queries)} queries, {database:5.1f} ms in all, slowest {slowest[0]:.1f} ms "
            f"{' '.join(slowest[1].split())[:60]}..."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--breaks", type=int, default=100_000)
    parser.add_argument("--mismatches", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--many", type=int, default=100_000, help="occurrences of one break")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--keep", action="store_true", help="measure a previous fill")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database (the bars are for PostgreSQL)")
    if args.keep:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brokerops.settings")
        import django

        django.setup()
    else:
        setup_django("breaks-pages")
        fill(breaks=args.breaks, mismatches=args.mismatches, runs=args.runs, many=args.many)
        users()
    measure(args.requests)


if __name__ == "__main__":
    main()
