"""Chaos: 1,000 submissions through resets (before and after the order is applied), timeouts,
429s and 5xx from the paper broker, until every signal is resolved.

Prints the faults injected, the cycles needed, and the three figures of docs/design.md section 8:
duplicate orders at the broker (bar 0), lost attempts (bar 0) and attempts whose final status
differs from the broker's (bar 0).

    ./dev python tests/benchmarks/chaos_bench.py [--signals 1000] [--seed 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks._support import setup_django

SYMBOLS = ("AAPL", "MSFT", "SPY", "TSLA", "BTC/USD")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--rate", type=int, default=3000, help="the paper broker's budget per key and minute"
    )
    args = parser.parse_args()
    setup_django("chaos")
    import logging

    from django.conf import settings

    from brokerops.alpaca import AlpacaGateway, BrokerError, InProcessLimiter, RetryPolicy
    from brokerops.intent.local import LocalSignalStore
    from brokerops.intent.schema import SignalStatus
    from brokerops.sim import PaperBroker
    from brokerops.sim.faults import chaos_faults
    from orders.models import OrderAttempt
    from orders.services import order_attempts_sync, orders_submit_pending

    logging.disable(logging.WARNING)
    settings.ORDER_CLAIM_TIMEOUT_S = 0
    settings.ORDER_GRACE_S = 0
    store = LocalSignalStore()
    store.put_documents(
        (
            f"c{i}",
            {
                "symbol": SYMBOLS[i % len(SYMBOLS)],
                "side": "buy",
                "qty": "0.01" if i % len(SYMBOLS) == 4 else "1",
                "order_type": "market",
                "status": "PENDING",
            },
        )
        for i in range(args.signals)
    )
    # The strict (Alpaca-like) paper broker: delayed fills, fees, reservations. Its rate limit
    # stays on with a budget scaled to a benchmark's minute, and the gateway paces itself under
    # it with its own limiter, as production does under Alpaca's 200/min.
    broker = PaperBroker(default_assets=True, rate_limit_per_min=args.rate).start()
    broker.set_faults(chaos_faults(args.seed))
    gateway = AlpacaGateway(
        api_key="test-key",
        secret_key="test-secret",
        base_url=broker.base_url,
        limiter=InProcessLimiter(rate_per_min=int(args.rate * 0.9)),
        timeout_s=0.3,
        retry_policy=RetryPolicy(
            max_attempts=3, base_s=0.0, max_backoff_s=0.0, sleep=lambda s: None
        ),
    )
    started = time.perf_counter()
    cycles = failed = 0
    outcomes: Counter = Counter()
    while cycles < 200:
        cycles += 1
        try:
            result = orders_submit_pending(gateway=gateway, store=store, limit=args.signals)
            outcomes.update(str(o.outcome) for o in result.outcomes)
            order_attempts_sync(gateway=gateway, store=store)
        except BrokerError:
            failed += 1
        unresolved = OrderAttempt.objects.filter(status__in=["created", "unknown"]).count()
        if not store.read(statuses=[SignalStatus.PENDING]).signals and not unresolved:
            break
    broker.set_faults(None)
    broker.settle(timeout=30)  # fills are delayed, as at Alpaca
    order_attempts_sync(gateway=gateway, store=store)
    wall = time.perf_counter() - started

    orders = broker.orders()
    per_coid = Counter(o["client_order_id"] for o in orders)
    attempts = {a.client_order_id: a for a in OrderAttempt.objects.all()}
    disagree = [
        o["client_order_id"]
        for o in orders
        if attempts.get(o["client_order_id"]) is None
        or attempts[o["client_order_id"]].broker_status != o["status"]
    ]
    signals_done = Counter(str(store.get(f"c{i}").status) for i in range(args.signals))
    faults = Counter(str(event.kind) for event in broker.fault_log())
    broker.stop()
    print(
        f"{args.signals} signals, seed {args.seed}: {cycles} cycles ({failed} failed a bulk"
        f" read), {wall:.1f} s, {broker.total_requests()} requests"
    )
    print(f"faults injected   {sum(faults.values())}: {dict(sorted(faults.items()))}")
    print(f"cycle outcomes    {dict(sorted(outcomes.items()))}")
    print(f"orders at broker  {len(orders)}")
    print(f"duplicate orders  {sum(n - 1 for n in per_coid.values())}   (bar: 0)")
    print(f"lost attempts     {args.signals - len(attempts)}   (bar: 0)")
    print(f"status disagrees  {len(disagree)}   (bar: 0)")
    print(f"signals final     {dict(signals_done)}")


if __name__ == "__main__":
    main()
