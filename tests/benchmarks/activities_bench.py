"""Activities: the first read of an account's ledger (docs/design.md section 18; the bar of
section 8: 100,000 activities read the first time, linear, under 10 s on loopback).

For each size (25,000, 50,000, 100,000 by default) a paper broker in a child process is seeded
with that many activities straight into its ledger (fills, coin fees, split pairs, dividends,
journals, a type nobody knows), then one ``activities_sync`` of an empty table reads them through
the real gateway and alpaca-py (1,000 pages of 100 for 100,000) into PostgreSQL, page by page.
Prints the wall time, API calls, rows a second, peak RSS, and the sync after it (caught up: one
call). The broker's rate limit is off: at Alpaca's 200 requests a minute 1,000 pages take five
minutes whatever the code does; what is measured is the cost of everything else.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/brokerops_bench_activities \\
    ./dev python tests/benchmarks/activities_bench.py [--sizes 25000,50000,100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks._support import RemoteBroker, peak_rss_mb, setup_django

START_NS = 1_767_600_000 * 1_000_000_000  # 2026-01-05 08:00 UTC


def seed(broker, *, count: int) -> None:
    """``count`` activities in the paper broker's ledger, booked a millisecond apart."""
    ledger = broker.book.ledger
    with broker.book.lock:
        for i in range(count):
            ledger.post(_body(i), START_NS + i * 1_000_000)


def _body(i: int) -> dict[str, object]:
    kind = i % 10
    if kind < 6:
        return {
            "activity_type": "FILL",
            "type": "fill",
            "transaction_time": "2026-01-05T14:30:00.123456Z",
            "price": "187.25",
            "qty": "3",
            "side": "buy" if kind % 2 else "sell",
            "symbol": ("AAPL", "MSFT", "TSLA")[i % 3],
            "order_id": f"00000000-0000-4000-8000-{i:012d}",
            "order_status": "filled",
        }
    if kind == 6:
        return {
            "activity_type": "CFEE",
            "symbol": "BTCUSD",
            "qty": "-0.0000250000000000123",  # more than 9 decimals
            "price": "97000.123456789",
            "net_amount": "0",
            "description": "Coin Pair Transaction Fee (Non USD)",
        }
    if kind == 7:
        return {
            "activity_type": "SPLIT",
            "activity_sub_type": "FSPLIT",
            "symbol": "NVDA",
            "qty": "-10" if i % 20 < 10 else "40",
            "description": "REMOVE" if i % 20 < 10 else "ADD",
        }
    if kind == 8:
        return {
            "activity_type": "DIV",
            "activity_sub_type": "CDIV",
            "symbol": "AAPL",
            "net_amount": "1.23",
            "qty": "10",
            "per_share_amount": "0.123",
        }
    return {"activity_type": "ZZNEW" if i % 20 == 9 else "JNLC", "net_amount": "-5"}


def one_size(count: int) -> dict[str, float]:
    from django.db import connection

    from brokerops.alpaca import AlpacaGateway
    from ledger.models import AccountActivity
    from ledger.services import activities_sync

    with connection.cursor() as cursor:  # an owner's maintenance statement: not refused
        cursor.execute("TRUNCATE ledger_accountactivity")
    seeded = time.perf_counter()
    broker = RemoteBroker(
        "tests.benchmarks.activities_bench:seed",
        broker={"rate_limit_per_min": None},
        seed={"count": count},
    )
    seed_s = time.perf_counter() - seeded
    try:
        with AlpacaGateway(
            api_key="test-key", secret_key="test-secret", base_url=broker.base_url
        ) as gateway:
            started = time.perf_counter()
            first = activities_sync(gateway=gateway)
            wall = time.perf_counter() - started
            again = activities_sync(gateway=gateway)
    finally:
        broker.stop()
    stored = AccountActivity.objects.count()
    assert stored == count and first.new == count and first.complete, (stored, first)
    return {
        "count": count,
        "seed_s": seed_s,
        "wall_s": wall,
        "api_calls": first.api_calls,
        "pages": first.pages,
        "rows_per_s": count / wall,
        "us_per_row": wall / count * 1e6,
        "caught_up_calls": again.api_calls,
        "caught_up_new": again.new,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="25000,50000,100000")
    args = parser.parse_args()
    setup_django("activities")
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("activities_bench measures PostgreSQL: set DATABASE_URL=postgres://...")
    one_size(500)  # warm-up, not reported: the first use loads alpaca-py and the parsers
    results = [one_size(int(size)) for size in args.sizes.split(",")]
    for r in results:
        print(
            f"{r['count']:>7,} activities: first sync {r['wall_s']:.2f} s wall, "
            f"{r['api_calls']:,} API calls ({r['pages']:,} pages), {r['rows_per_s']:,.0f} rows/s "
            f"({r['us_per_row']:.1f} us/row); caught up: {r['caught_up_calls']} call, "
            f"{r['caught_up_new']} new; peak RSS {r['peak_rss_mb']:.0f} MB "
            f"(seeding the broker {r['seed_s']:.1f} s)"
        )
    base = results[0]
    for r in results[1:]:
        ratio = (r["wall_s"] / base["wall_s"]) / (r["count"] / base["count"])
        print(f"linearity {base['count']:,} -> {r['count']:,}: {ratio:.2f} (1.00 = linear)")
    largest = results[-1]
    verdict = "met" if largest["wall_s"] < 10 else "MISSED"
    print(f"bar: {largest['count']:,} activities under 10 s: {verdict} ({largest['wall_s']:.2f} s)")


if __name__ == "__main__":
    main()
