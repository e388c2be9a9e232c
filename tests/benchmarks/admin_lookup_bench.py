"""Admin lookup by exact client_order_id with 1,000,000 order attempts on PostgreSQL.

Fills the audit tables with generated rows (one SQL statement each, server side), then times
what compliance staff do: the attempt list searched by an exact client_order_id, and that
attempt's page (the attempt, its events, the mismatches naming it), through Django's test client
as a `compliance` user, rendering included. Prints the median and worst of 25 lookups and the
query plan. docs/design.md section 8: under 100 ms.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/brokerops_bench \\
    ./dev python tests/benchmarks/admin_lookup_bench.py [--attempts 1000000]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=25)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database (the bar is for PostgreSQL)")
    setup_django("admin-lookup")
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from orders.models import OrderAttempt
    from tests import factories

    # Events are chained (docs/design.md section 12): the audit benchmark's COPY fill writes them
    # with their hashes, three per attempt.
    from tests.benchmarks.audit_bench import fill

    started = time.perf_counter()
    fill(args.attempts * 3)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_orderattempt; ANALYZE orders_orderevent")
    print(
        f"filled {OrderAttempt.objects.count():,} attempts and "
        f"{args.attempts * 3:,} events in {time.perf_counter() - started:.1f} s"
    )

    client = Client(HTTP_HOST="localhost")
    client.force_login(factories.staff_user(group="compliance", username="bench-compliance"))
    listing = reverse("admin:orders_orderattempt_changelist")
    rng = random.Random(1)
    search_ms, page_ms = [], []
    for _ in range(args.lookups):
        i = rng.randint(1, args.attempts)
        t = time.perf_counter()
        response = client.get(listing, {"q": f"bo-sig{i}-entry"})
        search_ms.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200
        assert f"bo-sig{i}-entry".encode() in response.content
        assert b"1 result" in response.content
        pk = OrderAttempt.objects.only("pk").get(client_order_id=f"bo-sig{i}-entry").pk
        t = time.perf_counter()
        page = client.get(reverse("admin:orders_orderattempt_change", args=[pk]))
        page_ms.append((time.perf_counter() - t) * 1000)
        assert page.status_code == 200 and b"request_sent" in page.content

    browse_ms = []
    for _ in range(5):
        t = time.perf_counter()
        assert client.get(listing).status_code == 200
        browse_ms.append((time.perf_counter() - t) * 1000)

    with connection.cursor() as cursor:
        qs = OrderAttempt.objects.filter(client_order_id="bo-sig4242-entry")
        sql, params = qs.query.sql_with_params()
        cursor.execute("EXPLAIN ANALYZE " + sql, params)
        plan = [row[0] for row in cursor.fetchall()]
    print(
        f"\nsearch by exact client_order_id (list page, {args.lookups} lookups): median "
        f"{statistics.median(search_ms):.1f} ms, worst {max(search_ms):.1f} ms (bar: < 100 ms)"
    )
    print(
        f"the attempt's page (events + mismatches): median {statistics.median(page_ms):.1f} ms,"
        f" worst {max(page_ms):.1f} ms"
    )
    print(f"the unsearched list (newest first): median {statistics.median(browse_ms):.1f} ms")
    print("plan of the lookup:\n  " + "\n  ".join(plan))


if __name__ == "__main__":
    main()
