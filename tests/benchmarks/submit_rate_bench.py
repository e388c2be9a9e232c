"""Order submission through 4 worker processes against a rate-limited paper broker.

Every worker is its own process with its own gateway; they share one token bucket in Redis sized
by ALPACA_RATE_LIMIT_PER_MIN, while the paper broker enforces the same budget per API key over
fixed 60 s windows and answers 429 beyond it. Prints the achieved request rate as a fraction of
the allowed rate, the 429s, and duplicates at the broker. docs/design.md section 8: at least 90% of
the allowed rate, no 429 storm, 0 duplicates.

    export REDIS_URL=redis://127.0.0.1:6379/13
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/brokerops_bench
    ./dev python tests/benchmarks/submit_rate_bench.py [--rate 600] [--seconds 75] [--workers 4]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks._support import RemoteBroker, setup_django

SYMBOLS = ("AAPL", "MSFT", "SPY", "TSLA")


def seed_broker(broker) -> None:
    broker.add_default_assets()


def worker(index: int, count: int, base_url: str, rate: int, seconds: float, ready, out) -> None:
    import django

    django.setup()
    from django.conf import settings

    from brokerops.alpaca import AlpacaGateway, build_limiter
    from brokerops.intent.local import LocalSignalStore
    from orders.services import orders_submit_pending

    limiter = build_limiter(redis_url=settings.REDIS_URL, api_key="test-key", rate_per_min=rate)
    gateway = AlpacaGateway(
        api_key="test-key",
        secret_key="test-secret",
        base_url=base_url,
        limiter=limiter,
        timeout_s=30,
    )
    store = LocalSignalStore()
    outcomes: Counter = Counter()
    ready.wait()  # all workers start together, once Django is up in each
    deadline = time.time() + seconds
    while time.time() < deadline:
        result = orders_submit_pending(
            gateway=gateway,
            store=store,
            limit=25,
            shard=(index, count),
            actor=f"bench-worker-{index}",
        )
        outcomes.update(str(o.outcome) for o in result.outcomes)
        if not result.outcomes:
            break
    out.put((index, dict(outcomes), gateway.api_calls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=600, help="allowed requests per minute")
    parser.add_argument("--seconds", type=float, default=75.0)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        sys.exit("set REDIS_URL: the workers share their rate limiter through Redis")
    setup_django("submit-rate")
    import redis
    from django.conf import settings

    from brokerops.intent.local import LocalSignalStore

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    signals = int(args.rate / 60 * args.seconds * 1.5)  # more than the budget allows
    LocalSignalStore().put_documents(
        (
            f"r{i}",
            {
                "symbol": SYMBOLS[i % 4],
                "side": "buy",
                "qty": "1",
                "order_type": "market",
                "status": "PENDING",
            },
        )
        for i in range(signals)
    )
    broker = RemoteBroker("tests.benchmarks.submit_rate_bench:seed_broker")
    broker.call("set_rate_limit", args.rate, 60.0)
    broker.call("reset_counters")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    ready = ctx.Barrier(args.workers + 1)
    procs = [
        ctx.Process(
            target=worker,
            args=(i, args.workers, broker.base_url, args.rate, args.seconds, ready, out),
        )
        for i in range(args.workers)
    ]
    for proc in procs:
        proc.start()
    ready.wait()
    started = time.time()
    results = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = time.time() - started
    statuses = broker.call("status_counts")
    total = broker.call("total_requests")
    served = total - broker.call("rate_limited_count")
    orders = broker.call("orders")
    per_coid = Counter(o["client_order_id"] for o in orders)
    broker.stop()

    allowed = args.rate / 60 * elapsed
    print(f"{args.workers} workers, {elapsed:.1f} s, broker budget {args.rate}/min per key")
    for index, outcomes, calls in sorted(results):
        print(f"  worker {index}: {calls} API calls, outcomes {outcomes}")
    print(f"requests served  {served}  ({served / elapsed * 60:.0f}/min)")
    print(
        f"allowed          {allowed:.0f}  ->  achieved {served / allowed:.1%} of the allowed rate"
        " (bar: >= 90%)"
    )
    print(f"429 answers      {statuses.get(429, 0)}  (bar: no storm)")
    print(
        f"orders placed    {len(orders)}; duplicates {sum(n - 1 for n in per_coid.values())}"
        " (bar: 0)"
    )


if __name__ == "__main__":
    main()
