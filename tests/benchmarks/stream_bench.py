"""trade_updates: broker fill to OrderEvent and signal ACTIVE, at 200 fills/s, and what is lost
across 10 forced disconnects.

The paper broker runs in a child process (its own core, as a remote broker would); fills are
made there at a steady rate (``fill_order`` by hand on resting orders whose attempts are OPEN and
whose signals are SUBMITTED). The consumer (``trade_updates_consume``, as the command runs it)
applies each event; the latency of a fill is from the broker's ``filled_at`` to the moment the
attempt's ``status_changed`` event is committed and the signal is ACTIVE. Then a second burst
with the stream cut 10 times: every fill must end applied (by the stream or by the catch-up
sync after each reconnect). docs/design.md section 8: p50 under 100 ms, p99 under 1 s, 0 lost.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/brokerops_bench_stream \\
    ./dev python tests/benchmarks/stream_bench.py [--fills 2000] [--rate 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks._support import RemoteBroker, setup_django

KEYS = ("test-key", "test-secret")


def seed(broker, *, batches: dict[str, int]) -> None:
    broker.add_asset("AAPL", price="100")
    broker.set_rate_limit(None)
    for prefix, fills in batches.items():
        _seed_orders(broker, fills, prefix)


def _seed_orders(broker, fills: int, prefix: str) -> None:
    for i in range(fills):
        broker.seed_order(
            "AAPL",
            "1",
            client_order_id=f"bo-{prefix}{i}-entry",
            status="new",
            type="limit",
            limit_price="1",
        )


def prepare(fills: int, prefix: str, store) -> None:
    from orders.models import OrderAttempt

    OrderAttempt.objects.bulk_create(
        OrderAttempt(
            client_order_id=f"bo-{prefix}{i}-entry",
            signal_id=f"{prefix}{i}",
            symbol="AAPL",
            side="buy",
            order_type="limit",
            qty=1,
            limit_price=1,
            status="open",
            broker_status="new",
        )
        for i in range(fills)
    )
    store.put_documents(
        (
            f"{prefix}{i}",
            {
                "symbol": "AAPL",
                "side": "buy",
                "qty": "1",
                "order_type": "limit",
                "limit_price": "1",
                "status": "SUBMITTED",
            },
        )
        for i in range(fills)
    )


def burst(broker: RemoteBroker, *, fills: int, rate: float, prefix: str, drops: int = 0) -> float:
    """Fill ``fills`` orders at ``rate`` per second; cut the stream ``drops`` times, evenly."""
    every = fills // drops if drops else 0
    started = time.perf_counter()
    for i in range(fills):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        broker.call("fill_order", f"bo-{prefix}{i}-entry")
        if every and i % every == every // 2:
            broker.call("stream_drop")
    return fills / (time.perf_counter() - started)


def wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--drop-fills", type=int, default=1000)
    args = parser.parse_args()
    setup_django("stream")
    import logging

    from brokerops.alpaca import AlpacaGateway, NullLimiter
    from brokerops.alpaca.stream import TradeUpdatesConnection
    from brokerops.intent.local import LocalSignalStore
    from brokerops.intent.schema import SignalStatus
    from orders.models import OrderAttempt
    from orders.services.stream import Backoff, StreamStats, trade_updates_consume

    logging.disable(logging.WARNING)
    store = LocalSignalStore()
    prepare(args.fills, "f", store)
    prepare(args.drop_fills, "d", store)
    broker = RemoteBroker(
        "tests.benchmarks.stream_bench:seed",
        seed={"batches": {"f": args.fills, "d": args.drop_fills}},
    )
    gateway = AlpacaGateway(
        api_key=KEYS[0], secret_key=KEYS[1], base_url=broker.base_url, limiter=NullLimiter()
    )
    latencies: list[float] = []
    applied = [0]

    def on_event(update, outcome) -> None:
        if update.event == "fill" and outcome == "changed":
            latencies.append((datetime.now(UTC) - update.timestamp).total_seconds())
            applied[0] += 1

    stop, stats = threading.Event(), StreamStats()
    url = broker.base_url.replace("http://", "ws://") + "/stream"
    consumer = threading.Thread(
        target=trade_updates_consume,
        kwargs=dict(
            connect=lambda: TradeUpdatesConnection(url=url, api_key=KEYS[0], secret_key=KEYS[1]),
            gateway=gateway,
            store=store,
            stop=stop,
            backoff=Backoff(0.05, 0.5),
            on_event=on_event,
            stats=stats,
        ),
        daemon=True,
    )
    consumer.start()
    broker.call("wait_for_stream_listeners", 1, 10.0)
    wait_until(lambda: stats.catch_ups >= 1, 30)

    achieved = burst(broker, fills=args.fills, rate=args.rate, prefix="f")
    wait_until(lambda: applied[0] >= args.fills, 60)
    active = sum(1 for i in range(args.fills) if store.get(f"f{i}").status is SignalStatus.ACTIVE)
    cuts = sorted(latencies)
    print(f"fills at {achieved:.0f}/s (asked {args.rate:.0f}/s): {len(cuts):,} from the stream")
    print(
        f"  broker fill -> OrderEvent + signal ACTIVE: p50 {statistics.median(cuts) * 1000:.1f} ms,"
        f" p99 {cuts[int(len(cuts) * 0.99) - 1] * 1000:.1f} ms, max {cuts[-1] * 1000:.1f} ms"
        " (bars: p50 < 100 ms, p99 < 1 s)"
    )
    print(f"  signals ACTIVE: {active:,} of {args.fills:,}")

    # Second burst: the stream cut 10 times while fills keep coming.
    before = (stats.connects, stats.catch_ups, stats.events)
    burst(broker, fills=args.drop_fills, rate=args.rate, prefix="d", drops=10)
    done = wait_until(
        lambda: (
            OrderAttempt.objects.filter(signal_id__startswith="d", status="filled").count()
            == args.drop_fills
        ),
        120,
    )
    filled = OrderAttempt.objects.filter(signal_id__startswith="d", status="filled").count()
    active = sum(
        1 for i in range(args.drop_fills) if store.get(f"d{i}").status is SignalStatus.ACTIVE
    )
    print(
        f"{args.drop_fills:,} fills with 10 forced disconnects: {filled:,} attempts filled, "
        f"{active:,} signals ACTIVE, lost {args.drop_fills - filled} (bar 0); "
        f"{stats.connects - before[0]} reconnects, {stats.catch_ups - before[1]} catch-ups, "
        f"{stats.events - before[2]:,} events from the stream"
        + ("" if done else " (timed out waiting)")
    )
    stop.set()
    consumer.join(timeout=10)
    broker.stop()


if __name__ == "__main__":
    main()
