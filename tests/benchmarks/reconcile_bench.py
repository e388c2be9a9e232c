"""Reconciliation at scale: 10,000 positions, 10,000 signals, 20,000 orders on loopback.

Prints wall time, peak memory, API calls and SQL queries for one bulk run, and the same figures
for the naive way (a position look-up per signal) on the same data in the same process, as
ratios. docs/design.md section 8: bulk under 5 s and 400 MB; at least 50x fewer calls and 10x less
wall time than naive.

    ./dev python tests/benchmarks/reconcile_bench.py [--positions 10000] [--orders 20000]
        [--latency-ms 0] [--store local|firestore] [--skip-naive]

``--store firestore`` keeps the signals in Google's Firestore emulator (the production store),
started for the run; ``--skip-naive`` measures the bulk run only (the 100,000 bar).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks._support import (
    RemoteBroker,
    count_queries,
    peak_rss_mb,
    setup_django,
    timed,
)

ORPHAN_EVERY = 100  # 1% of signals lost their holding
QTY_DRIFT_EVERY = 50  # 2% disagree on quantity


def symbol(i: int) -> str:
    return f"S{i:05d}"


def reconcile_world(broker, *, positions: int, orders: int) -> None:
    now = datetime.now(UTC)
    for i in range(positions):
        broker.add_asset(symbol(i), price=Decimal("10"))
        if i % ORPHAN_EVERY == 0:
            continue
        qty = 10 + (1 if i % QTY_DRIFT_EVERY == 0 else 0)
        broker.seed_position(symbol(i), qty)
    for j in range(orders):
        i = j % positions
        ours = j < positions
        broker.seed_order(
            symbol(i),
            10,
            client_order_id=f"bo-sig{i}-entry" if ours else f"ext-{j}",
            status="filled",
            filled_qty="10",
            filled_avg_price="10",
            submitted_at=now - timedelta(seconds=orders - j),
        )


def seed_intent(n: int, store) -> None:
    from orders.models import OrderAttempt

    store.put_documents(
        (
            f"sig{i}",
            {
                "symbol": symbol(i),
                "side": "buy",
                "qty": "10",
                "order_type": "market",
                "status": "ACTIVE",
                "client_order_id": f"bo-sig{i}-entry",
            },
        )
        for i in range(n)
    )
    OrderAttempt.objects.bulk_create(
        [
            OrderAttempt(
                client_order_id=f"bo-sig{i}-entry",
                signal_id=f"sig{i}",
                symbol=symbol(i),
                side="buy",
                order_type="market",
                qty=10,
                status="filled",
                broker_status="filled",
                filled_qty=10,
            )
            for i in range(n)
        ],
        batch_size=2000,
    )


def naive_run(gateway, store) -> tuple[int, int]:
    """What the brief warns against: one position look-up per ACTIVE signal."""
    from brokerops.alpaca import BrokerNotFound
    from brokerops.intent.schema import SignalStatus

    orphans = mismatched = 0
    for signal in store.read(statuses=[SignalStatus.ACTIVE]).signals:
        try:
            position = gateway.get_position(signal.symbol_key)
        except BrokerNotFound:
            orphans += 1
            continue
        if position.qty != signal.signed_qty:
            mismatched += 1
    return orphans, mismatched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="network latency the paper broker adds to every answer (both ways"
        " of reconciling pay it); 0 is raw loopback",
    )
    parser.add_argument("--store", choices=("local", "firestore"), default="local")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()
    setup_django("reconcile")
    # One CRITICAL line per orphan (and one alert's WARNING) is the product's behaviour; here it
    # would bury the figures.
    logging.getLogger("reconciliation.repairs").setLevel(logging.CRITICAL + 1)
    logging.getLogger("alerts.services").setLevel(logging.CRITICAL + 1)
    with contextlib.ExitStack() as stack:
        store = open_store(args.store, stack)
        bench(args, store)


def open_store(kind: str, stack: contextlib.ExitStack):
    """The signal store to seed and reconcile against (Firestore: a fresh emulator)."""
    if kind == "local":
        from brokerops.intent.local import LocalSignalStore

        return LocalSignalStore()
    from brokerops.intent.firestore import FirestoreSignalStore
    from brokerops.intent.firestore_client import firestore_client
    from tests.firestore_emulator import running_emulator

    log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    emulator = stack.enter_context(running_emulator(log_dir / "emulator.log"))
    print(f"Firestore emulator on {emulator.host}", flush=True)
    client = firestore_client(project=emulator.project, emulator_host=emulator.host)
    return FirestoreSignalStore(client, "signals")


def bench(args, store) -> None:
    from django.conf import settings

    from brokerops.alpaca import AlpacaGateway, NullLimiter
    from reconciliation.services import reconciliation_run

    n, m = args.positions, args.orders
    print(f"seeding: {n} positions/signals, {m} orders ...", flush=True)
    # The strict paper broker, rate limit off: at Alpaca's 200/min the naive way alone would
    # take n / 200 minutes (its cost in calls is printed); the bulk run's calls fit the budget.
    broker = RemoteBroker(
        "tests.benchmarks.reconcile_bench:reconcile_world",
        seed={"positions": n, "orders": m},
        broker={"rate_limit_per_min": None},
    )
    seed_intent(n, store)
    settings.RECONCILE_MAX_CONFIRMATIONS = n  # confirm every orphan: the bar counts them
    print(f"signals in the {args.store} store", flush=True)
    gateway = AlpacaGateway(
        api_key="test-key",
        secret_key="test-secret",
        base_url=broker.base_url,
        limiter=NullLimiter(),
        timeout_s=30,
    )
    try:
        if args.latency_ms:
            from brokerops.sim import FaultConfig

            broker.call("set_faults", FaultConfig(seed=1, latency_s=args.latency_ms / 1000))
            print(f"every answer delayed by {args.latency_ms} ms")
        # The naive way first: the bulk run below repairs (closes the orphans' signals).
        if not args.skip_naive:
            broker.call("reset_counters")
            with count_queries() as naive_queries, timed() as naive_wall:
                naive_orphans, naive_mismatched = naive_run(gateway, store)
            naive_calls = broker.call("total_requests")
            print(
                f"\nnaive (one position look-up per signal): {naive_orphans} orphans, "
                f"{naive_mismatched} quantity mismatches"
            )
            print(f"  wall            {naive_wall[0]:.2f} s")
            print(f"  API calls       {naive_calls}")
            print(f"  SQL queries     {naive_queries[0]}")

        broker.call("reset_counters")
        rss_before = peak_rss_mb()
        with count_queries() as queries, timed() as wall:
            run = reconciliation_run(trigger="command", gateway=gateway, store=store)
        bulk_calls = broker.call("total_requests")
        assert run.status == "succeeded", run.error
        orphans = run.mismatches.filter(kind="ORPHAN_POSITION").count()
        # A repair's outcome is a RunEvent of the mismatch (the Mismatch row keeps its start).
        closed = run.events.filter(kind="repair_outcome", action="signal_closed_manual").count()
        bound = 1 + math.ceil(m / 500) + orphans
        print(
            f"\nbulk run #{run.pk}: {run.status}, {run.mismatches_found} mismatches "
            f"({orphans} orphans confirmed, {closed} signals closed as CLOSED_MANUAL)"
        )
        # docs/design.md section 8: 10,000 positions under 5 s and 400 MB; 100,000 under 10 s and
        # 1 GB.
        wall_bar, rss_bar = ("10 s", "1 GB") if n >= 100_000 else ("5 s", "400 MB")
        print(f"  wall            {wall[0]:.2f} s   (bar: < {wall_bar})")
        print(
            f"  peak RSS        {peak_rss_mb():.0f} MB (before the run {rss_before:.0f} MB;"
            f" bar: < {rss_bar})"
        )
        print(
            f"  API calls       {bulk_calls}   (bar: 1 + ceil({m}/500) + {orphans} = {bound};"
            " the last page of orders is the short one that proves the end)"
        )
        print(f"  SQL queries     {queries[0]}")
        print(f"  phases          {run.summary['timings']}")
        if not args.skip_naive:
            print(
                f"\nratios naive/bulk: API calls {naive_calls / bulk_calls:.1f}x (bar: >= 50x), "
                f"wall {naive_wall[0] / wall[0]:.1f}x (bar: >= 10x)"
            )
    finally:
        gateway.close()
        broker.stop()


if __name__ == "__main__":
    main()
