"""Incremental runs at scale (docs/design.md section 18.3; the bar of section 8): an account with
200,000 orders in its look-back, 100 of them open, 10 changed since the last run.

Prints the API calls and the wall time of a full run (the first run, and ``--full`` on the same
state: what every run cost before incremental runs) and of the steady-state incremental run, and
checks that the incremental and the full run on the same broker state find the same.

    ./dev python tests/benchmarks/incremental_bench.py [--orders 200000] [--open 100]
        [--changed 10] [--symbols 50] [--resting-hours 6] [--latency-ms 0]

The history is spread evenly over the last 160 hours, on ``--symbols`` symbols; the open orders
are resting limit orders on the same symbols, placed over the last ``--resting-hours`` hours.
Between the runs, half of ``--changed`` are resting orders that left the open list (filled or
canceled) and half are new orders placed and filled.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks._support import RemoteBroker, setup_django, timed

HISTORY_HOURS = 160


def symbol(i: int) -> str:
    return f"S{i:03d}"


def incremental_world(
    broker, *, orders: int, open_orders: int, symbols: int, resting_hours: float
) -> None:
    now = datetime.now(UTC)
    for i in range(symbols):
        broker.add_asset(symbol(i), price=Decimal("10"))
    span = timedelta(hours=HISTORY_HOURS).total_seconds()
    for j in range(orders):
        broker.seed_order(
            symbol(j % symbols),
            1,
            client_order_id=f"ext-{j}",
            status="filled",
            submitted_at=now - timedelta(seconds=span * (1 - j / orders) + 1),
        )
    resting = timedelta(hours=resting_hours).total_seconds()
    for k in range(open_orders):
        broker.seed_order(
            symbol(k % symbols),
            1,
            client_order_id=f"rest-{k}",
            type="limit",
            limit_price="1",
            time_in_force="gtc",
            submitted_at=now - timedelta(seconds=resting * (1 - k / open_orders) + 0.5),
        )
    broker.seed_order(symbol(0), 1, client_order_id="first-fill")
    broker.fill_order("first-fill")  # a FILL activity: the ledger has a cursor


def change(broker, changed: int) -> None:
    """Half the changes: resting orders leave the open list; half: new orders, filled."""
    left = changed // 2
    for k in range(left):
        if k % 2:
            broker.call("cancel_order_manually", f"rest-{k * 7}")
        else:
            broker.call("fill_order", f"rest-{k * 7}")
    for n in range(changed - left):
        placed = broker.call("seed_order", symbol(n), 1, "buy")  # placed now, open
        broker.call("fill_order", placed["id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--open", type=int, default=100)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--resting-hours", type=float, default=6.0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    setup_django("incremental")
    logging.getLogger("reconciliation").setLevel(logging.WARNING)
    bench(args)


def bench(args) -> None:
    from brokerops.alpaca import AlpacaGateway, NullLimiter
    from brokerops.intent.local import LocalSignalStore
    from ledger.services import activities_sync
    from reconciliation.services import reconciliation_run

    print(f"seeding: {args.orders} orders, {args.open} open, {args.symbols} symbols ...")
    broker = RemoteBroker(
        "tests.benchmarks.incremental_bench:incremental_world",
        seed={
            "orders": args.orders,
            "open_orders": args.open,
            "symbols": args.symbols,
            "resting_hours": args.resting_hours,
        },
        broker={"rate_limit_per_min": None},
    )
    gateway = AlpacaGateway(
        api_key="test-key",
        secret_key="test-secret",
        base_url=broker.base_url,
        limiter=NullLimiter(),
        timeout_s=60,
    )
    store = LocalSignalStore()
    try:
        if args.latency_ms:
            from brokerops.sim import FaultConfig

            broker.call("set_faults", FaultConfig(seed=1, latency_s=args.latency_ms / 1000))
        activities_sync(gateway=gateway)  # the ledger's first read (its own task's, normally)

        def run(**options):
            with timed() as wall:
                done = reconciliation_run(
                    trigger="command", gateway=gateway, store=store, dry_run=True, **options
                )
            assert done.status == "succeeded", done.error
            return done, wall[0]

        first, first_s = run()
        report("first run (no base: full)", first, first_s)
        quiet, quiet_s = run()
        report("nothing changed", quiet, quiet_s)
        change(broker, args.changed)
        steady, steady_s = run()
        report(f"steady state, {args.changed} changed", steady, steady_s)
        full, full_s = run(full=True)
        report("the same state read in full (reconcile --full)", full, full_s)
        same = findings(steady) == findings(full)
        print(f"\nincremental and full find the same: {same}")
        print(
            f"API calls: {steady.api_calls} incremental vs {full.api_calls} full "
            f"({full.api_calls / steady.api_calls:.0f}x fewer); wall {steady_s:.2f} s vs "
            f"{full_s:.2f} s"
        )
        if not same:
            raise SystemExit("the incremental run's findings differ from the full run's")
    finally:
        gateway.close()
        broker.stop()


def report(label: str, run, wall_s: float) -> None:
    read = run.summary["orders_read"]
    print(
        f"{label}: {run.api_calls} API calls, {wall_s:.2f} s wall, {run.orders_seen} orders "
        f"compared; read {read['mode']}"
        + (f" ({read['reason']})" if read["reason"] else "")
        + "".join(f", {k} {v}" for k, v in read.items() if k not in ("mode", "reason")),
        flush=True,
    )


def findings(run) -> list[tuple]:
    return sorted(
        (m.kind, m.symbol, m.client_order_id, m.alpaca_order_id, m.detail)
        for m in run.mismatches.all()
    )


if __name__ == "__main__":
    main()
