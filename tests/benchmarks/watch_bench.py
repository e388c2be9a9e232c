"""Intent to order: a PENDING signal written to Firestore to the order received by the paper
broker, with the watcher running, at 50 signals/s (DESIGN.md sections 8 and 15).

Google's Firestore emulator runs as in the tests; the paper broker runs in a child process (its
own core, as a remote broker would). Signals are written one by one at a steady rate; the
watcher (``signals_watch``, as ``manage.py watch_signals`` runs it) sends each. The latency of a
signal is from the moment its write returned to the broker's ``created_at`` of its order (both
this machine's wall clock). Then every signal must have exactly one order. Bar: p50 under
300 ms, p99 under 1 s, exactly one order per signal.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/brokerops_bench_watch \\
    ./dev python tests/benchmarks/watch_bench.py [--signals 1000] [--rate 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks._support import RemoteBroker, setup_django

KEYS = ("test-key", "test-secret")


def seed(broker) -> None:
    broker.add_asset("AAPL", price="100")
    broker.set_rate_limit(None)


def signal_doc() -> dict:
    return {
        "symbol": "AAPL",
        "side": "buy",
        "qty": "1",
        "order_type": "market",
        "status": "PENDING",
    }


def write_at_rate(store, *, count: int, rate: float) -> dict[str, float]:
    """Write ``count`` PENDING signals at ``rate`` per second; each id's write time (epoch s)."""
    written: dict[str, float] = {}
    started = time.perf_counter()
    for i in range(count):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        signal_id = f"w{i:05d}"
        store.put_documents([(signal_id, signal_doc())])
        written[signal_id] = time.time()
    return written


def epoch(rfc3339: str) -> float:
    """The broker's ``created_at`` (up to nine fractional digits) as epoch seconds."""
    text = rfc3339.rstrip("Z")
    whole, _, fraction = text.partition(".")
    base = datetime.fromisoformat(whole + "+00:00").timestamp()
    return base + (float("0." + fraction) if fraction else 0.0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    setup_django("watch")
    import logging

    from brokerops.alpaca import AlpacaGateway, InProcessLimiter
    from brokerops.intent.firestore import FirestoreSignalStore, firestore_client
    from brokerops.intent.watch import pending_source
    from orders.services.stream import Backoff
    from orders.services.watch import WatchStats, signals_watch
    from tests.firestore_emulator import running_emulator

    logging.disable(logging.WARNING)
    log_path = Path(tempfile.mkdtemp(prefix="watch-bench-")) / "emulator.log"
    with running_emulator(log_path) as emulator:
        client = firestore_client(project=emulator.project, emulator_host=emulator.host)
        store = FirestoreSignalStore(client, "signals")
        store.delete_all()
        broker = RemoteBroker("tests.benchmarks.watch_bench:seed")
        # The limiter paces the broker side as in production; here at 100 requests/s, twice
        # what 50 signals/s need at worst (an order, and the batch's reads of positions/prices).
        gateway = AlpacaGateway(
            api_key=KEYS[0],
            secret_key=KEYS[1],
            base_url=broker.base_url,
            limiter=InProcessLimiter(6000, burst=50),
        )
        stop = threading.Event()
        stats = WatchStats()
        watcher = threading.Thread(
            target=signals_watch,
            kwargs=dict(
                source=lambda: pending_source(store, poll_s=0.5),
                gateway=gateway,
                store=store,
                stop=stop,
                workers=args.workers,
                backoff=Backoff(0.1, 1.0),
                stats=stats,
            ),
            daemon=True,
        )
        watcher.start()
        time.sleep(1.0)  # listening: the initial (empty) snapshot came
        started = time.perf_counter()
        written = write_at_rate(store, count=args.signals, rate=args.rate)
        write_s = time.perf_counter() - started
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(broker.call("orders")) >= args.signals:
                break
            time.sleep(0.2)
        time.sleep(1.0)  # anything doubled would show by now
        orders = broker.call("orders")
        stop.set()
        watcher.join(timeout=60)
        broker.stop()

    per_coid = Counter(o["client_order_id"] for o in orders)
    latencies = []
    for signal_id, at in written.items():
        order = next((o for o in orders if o["client_order_id"] == f"bo-{signal_id}-entry"), None)
        if order is not None:
            latencies.append(epoch(order["created_at"]) - at)
    missing = args.signals - len(latencies)
    doubled = sum(1 for n in per_coid.values() if n > 1)
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    print(f"signals written: {args.signals} at {args.signals / write_s:.1f}/s (asked {args.rate})")
    print(f"watcher: {args.workers} workers, outcomes {dict(stats.outcomes)}")
    print(
        f"signal written -> order at the broker: p50 {p50 * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms, "
        f"mean {statistics.mean(latencies) * 1000:.0f} ms"
    )
    print(f"orders: {len(orders)}; signals without an order: {missing}; doubled: {doubled}")
    ok = p50 < 0.3 and p99 < 1.0 and missing == 0 and doubled == 0
    print("bar (p50 < 300 ms, p99 < 1 s, exactly one order per signal):", "met" if ok else "MISSED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
