"""Intent to order: a PENDING signal written to Firestore to the order received by the paper
broker, with the watcher running, at 50 signals/s (docs/design.md sections 8 and 15).

Google's Firestore emulator runs as in the tests; the paper broker runs in a child process (its
own core, as a remote broker would). Signals are written one document per commit at a steady
rate by ``--writers`` processes (strategies are other processes; one writer alone cannot commit
50 single documents a second to the emulator on a 2-core machine), each on its own schedule; the
rate they achieved is printed. The watcher (``signals_watch``, as ``manage.py watch_signals``
runs it) sends each. The latency of a signal is from the moment its write returned to the
broker's ``created_at`` of its order (both this machine's wall clock). Then every signal must
have exactly one order. Bar: p50 under 300 ms, p99 under 1 s, exactly one order per signal.

Where the time goes (``--no-profile`` to leave it out): per-stage timings taken by wrapping the
watcher's steps in this process (listener delivery, queue wait, claim, re-read, the broker's
POST, the batched post-send work and its parts, the audit appends).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/brokerops_bench_watch \\
    ./dev python tests/benchmarks/watch_bench.py [--signals 1000] [--rate 50] [--writers 3]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
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


def _writer(host: str, project: str, ids: list[str], rate: float, start_at: float, conn) -> None:
    """One writer process: ``ids`` one document per commit, the i-th at ``start_at + i / rate``
    (epoch seconds); sends back (id, write started, write returned) for each."""
    from brokerops.intent.firestore import FirestoreSignalStore
    from brokerops.intent.firestore_client import firestore_client

    store = FirestoreSignalStore(firestore_client(project=project, emulator_host=host), "signals")
    times = []
    for i, signal_id in enumerate(ids):
        delay = start_at + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        began = time.time()
        store.put_documents([(signal_id, signal_doc())])
        times.append((signal_id, began, time.time()))
    conn.send(times)


def write_at_rate(emulator, *, count: int, rate: float, writers: int) -> list[tuple]:
    """Write ``count`` PENDING signals at ``rate`` per second in total from ``writers``
    processes (interleaved schedules); (id, started, returned) per signal, epoch seconds."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ids = [f"w{i:05d}" for i in range(count)]
    start_at = time.time() + 8.0  # the writers' imports and clients are ready by then
    procs = []
    for k in range(writers):
        mine = ids[k::writers]
        parent, child = ctx.Pipe()
        offset = start_at + k / rate
        proc = ctx.Process(
            target=_writer,
            args=(emulator.host, emulator.project, mine, rate / writers, offset, child),
            daemon=True,
        )
        proc.start()
        procs.append((proc, parent))
    times = []
    for proc, parent in procs:
        times.extend(parent.recv())
        proc.join(timeout=30)
    return sorted(times, key=lambda t: t[1])


class Stages:
    """Durations of the watcher's steps, by wrapping them in this process (see the docstring)."""

    def __init__(self) -> None:
        self.durations: dict[str, list[float]] = defaultdict(list)
        self.sizes: dict[str, list[int]] = defaultdict(list)
        self.delivered: dict[str, float] = {}  # signal id -> epoch seconds (source hands it on)
        self.started: dict[str, float] = {}  # signal id -> epoch seconds (a worker took it)
        self._lock = threading.Lock()

    def wrap(self, owner, name: str, label: str, *, size=None) -> None:
        inner = getattr(owner, name)

        @functools.wraps(inner)
        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                took = time.perf_counter() - began
                with self._lock:
                    self.durations[label].append(took)
                    if size is not None:
                        self.sizes[label].append(size(*args, **kwargs))

        setattr(owner, name, timed)

    def install(self) -> None:
        import orders.services.events as events
        import orders.services.finish as finish
        import orders.services.send as send
        import orders.services.submit as submit
        import orders.services.watch as watch
        from brokerops.alpaca import AlpacaGateway, InProcessLimiter
        from brokerops.intent import firestore
        from brokerops.intent.watch import FirestorePendingSource

        take = FirestorePendingSource.take

        def delivered(source_self, timeout_s):
            docs = take(source_self, timeout_s)
            now = time.time()
            with self._lock:
                for doc in docs:
                    self.delivered.setdefault(doc.id, now)
            return docs

        FirestorePendingSource.take = delivered
        submit_one = submit.signal_submit_one

        def started(*, signal, **kwargs):
            self.started.setdefault(signal.id, time.time())
            return submit_one(signal=signal, **kwargs)

        submit.signal_submit_one = started
        self.wrap(send, "attempt_claim", "claim one by one (attempt row + CREATED event)")
        self.wrap(
            submit,
            "attempts_claim_new",
            "claim per chunk (attempt rows + CREATED events)",
            size=lambda *, signals, **_: len(signals),  # and the account's name
        )
        self.wrap(
            firestore.FirestoreSignalStore,
            "get_many",
            "re-read (get_many, per chunk)",
            size=lambda _self, ids: len(ids),
        )
        self.wrap(AlpacaGateway, "submit_order", "broker POST /v2/orders")
        self.wrap(InProcessLimiter, "acquire", "rate limiter wait (per request)")
        self.wrap(AlpacaGateway, "list_positions", "positions read (per batch)")
        self.wrap(
            watch,
            "orders_accepted_finish",
            "post-send work (per finisher turn)",
            size=lambda **kw: len(kw["accepted"]),
        )
        self.wrap(
            finish,
            "order_attempts_apply_broker_orders",
            "  attempts take the order state (bulk)",
        )
        self.wrap(
            firestore.FirestoreSignalStore,
            "transition_many",
            "  signals -> SUBMITTED (transition_many)",
            size=lambda _self, transitions: len(transitions),
        )
        self.wrap(events, "chain_append", "audit append (one transaction's events)")

    def report(self, times: list[tuple]) -> None:
        written = {signal_id: returned for signal_id, _, returned in times}
        delivery = [self.delivered[i] - t for i, t in written.items() if i in self.delivered]
        waited = [
            self.started[i] - self.delivered[i]
            for i in written
            if i in self.started and i in self.delivered
        ]
        print("where the time goes (ms):")
        _line("delivery (write returned -> the source hands it on)", delivery)
        _line("queue wait (handed on -> a worker takes it)", waited)
        for label, values in self.durations.items():
            sizes = self.sizes.get(label)
            extra = f", batch mean {statistics.mean(sizes):.1f}" if sizes else ""
            _line(label, values, extra)


def _line(label: str, values: list[float], extra: str = "") -> None:
    if not values:
        print(f"  {label:52s} n=0")
        return
    print(
        f"  {label:52s} n={len(values):5d} p50 {percentile(values, 0.5) * 1000:7.1f} "
        f"p99 {percentile(values, 0.99) * 1000:7.1f} mean {statistics.mean(values) * 1000:7.1f}"
        + extra
    )


def epoch(rfc3339: str) -> float:
    """The broker's ``created_at`` (up to nine fractional digits) as epoch seconds."""
    text = rfc3339.rstrip("Z")
    whole, _, fraction = text.partition(".")
    base = datetime.fromisoformat(whole + "+00:00").timestamp()
    return base + (float("0." + fraction) if fraction else 0.0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def listen_only(store, emulator, args) -> None:
    """Firestore's listener on the PENDING query and one thread moving what it delivered out of
    PENDING in batches (as the watcher's finisher does, so the query stays small), nothing
    else: how late the listener delivers at this write rate."""
    import queue

    from brokerops.intent.schema import SignalStatus
    from brokerops.intent.store import Transition

    delivered: dict[str, float] = {}
    moved: queue.SimpleQueue = queue.SimpleQueue()

    def on_documents(docs) -> None:
        now = time.time()
        for doc in docs:
            if doc.id not in delivered:
                delivered[doc.id] = now
                moved.put(doc.id)

    def mover() -> None:
        while len(delivered) < args.signals or not moved.empty():
            ids = [moved.get()]
            while not moved.empty():
                ids.append(moved.get())
            store.transition_many(
                [Transition(i, SignalStatus.PENDING, SignalStatus.SUBMITTED, "bench") for i in ids]
            )

    watch = store.watch_pending(on_documents)
    while watch.snapshots < 1:
        time.sleep(0.05)
    threading.Thread(target=mover, daemon=True).start()
    times = write_at_rate(emulator, count=args.signals, rate=args.rate, writers=args.writers)
    deadline = time.monotonic() + 60
    while len(delivered) < args.signals and time.monotonic() < deadline:
        time.sleep(0.1)
    watch.close()
    write_s = max(t[2] for t in times) - min(t[1] for t in times)
    delays = [delivered[i] - returned for i, _, returned in times if i in delivered]
    print(f"listener only: {args.signals} signals written at {args.signals / write_s:.1f}/s")
    _line("listener delivery (write returned -> callback)", delays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--writers", type=int, default=3, help="writer processes")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument(
        "--listener",
        choices=("process", "thread"),
        default="process",
        help="Firestore's listener in a process of its own (WATCH_LISTENER_PROCESS, the "
        "default) or on a thread of the watcher's",
    )
    parser.add_argument(
        "--poll-s", type=float, default=None, help="the backstop read's period (WATCH_POLL_S)"
    )
    parser.add_argument(
        "--limiter-rate",
        type=float,
        default=200.0,
        help="the broker rate limiter's requests per second. The watcher makes about two a "
        "signal at this rate (an order each, a batch of about two signals reads positions and "
        "prices once): at 100/s the limiter runs full and its queue adds ~120 ms p50",
    )
    parser.add_argument(
        "--listen-only",
        action="store_true",
        help="the listener alone (no watcher): its delivery latency at this write rate",
    )
    args = parser.parse_args()
    setup_django("watch")
    import logging

    from django.conf import settings

    from brokerops.alpaca import AlpacaGateway, InProcessLimiter
    from brokerops.intent.firestore import FirestoreSignalStore
    from brokerops.intent.firestore_client import firestore_client
    from brokerops.intent.watch import pending_source
    from orders.services.stream import Backoff
    from orders.services.watch import WatchStats, signals_watch
    from tests.firestore_emulator import running_emulator

    logging.disable(logging.WARNING)
    stages = Stages()
    if args.profile:
        stages.install()
    log_path = Path(tempfile.mkdtemp(prefix="watch-bench-")) / "emulator.log"
    with running_emulator(log_path) as emulator:
        client = firestore_client(project=emulator.project, emulator_host=emulator.host)
        store = FirestoreSignalStore(client, "signals")
        store.delete_all()
        if args.listen_only:
            listen_only(store, emulator, args)
            return
        broker = RemoteBroker("tests.benchmarks.watch_bench:seed")
        # The limiter paces the broker side as in production, at twice the requests the
        # watcher makes at 50 signals/s (see --limiter-rate).
        gateway = AlpacaGateway(
            api_key=KEYS[0],
            secret_key=KEYS[1],
            base_url=broker.base_url,
            limiter=InProcessLimiter(round(args.limiter_rate * 60), burst=50),
        )
        stop = threading.Event()
        stats = WatchStats()
        poll_s = args.poll_s or settings.WATCH_POLL_S
        watcher = threading.Thread(
            target=signals_watch,
            kwargs=dict(
                source=lambda: pending_source(
                    store, poll_s=poll_s, listener_process=args.listener == "process"
                ),
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
        while stats.connects < 1:  # listening: the initial (empty) snapshot comes at once
            time.sleep(0.05)
        times = write_at_rate(emulator, count=args.signals, rate=args.rate, writers=args.writers)
        written = {signal_id: returned for signal_id, _, returned in times}
        write_s = max(t[2] for t in times) - min(t[1] for t in times)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(broker.call("orders")) >= args.signals:
                break
            time.sleep(0.2)
        stop.set()
        watcher.join(timeout=60)  # stopped: nothing more can be sent, a double would show now
        orders = broker.call("orders")
        broker.stop()

    per_coid = Counter(o["client_order_id"] for o in orders)
    latencies = []
    by_coid = {o["client_order_id"]: o for o in orders}
    for signal_id, at in written.items():
        order = by_coid.get(f"bo-{signal_id}-entry")
        if order is not None:
            latencies.append(epoch(order["created_at"]) - at)
    missing = args.signals - len(latencies)
    doubled = sum(1 for n in per_coid.values() if n > 1)
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    print(
        f"signals written: {args.signals} by {args.writers} writer processes at "
        f"{args.signals / write_s:.1f}/s offered (asked {args.rate}); single-document write "
        f"p50 {percentile([t[2] - t[1] for t in times], 0.5) * 1000:.0f} ms"
    )
    print(
        f"watcher: {args.workers} workers, listener in a {args.listener}, backstop read every "
        f"{poll_s} s, rate limiter {args.limiter_rate:g} requests/s, outcomes "
        f"{dict(stats.outcomes)}"
    )
    print(
        f"signal written -> order at the broker: p50 {p50 * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms, "
        f"mean {statistics.mean(latencies) * 1000:.0f} ms"
    )
    print(f"orders: {len(orders)}; signals without an order: {missing}; doubled: {doubled}")
    if args.profile:
        stages.report(times)
    ok = p50 < 0.3 and p99 < 1.0 and missing == 0 and doubled == 0
    print("bar (p50 < 300 ms, p99 < 1 s, exactly one order per signal):", "met" if ok else "MISSED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
