"""Many accounts fanned out on Celery: 200 accounts reconciled by 4 worker processes.

One paper broker process serves every account (its own key pair, book and rate budget of
200 requests a minute per key, as Alpaca's); the signals live in the local store on PostgreSQL;
4 Celery worker processes (``--pool solo``: one process each, no prefork children) consume the
accounts queue on Redis. The script fires the fan-out of ``reconciliation.run`` once, as beat
would, and waits for one finished run per account. Then it reconciles the same accounts one after
the other in this process (``manage.py reconcile --all``), and fans out once more with one
account's broker down (every answer a 500). docs/design.md sections 8 and 16: every account
reconciled within 60 s of the fan-out, 0 x 429, no account over its budget; one account down adds
under 1 s to the others' runs.

    export REDIS_URL=redis://127.0.0.1:6379/13
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/brokerops_bench_accounts
    ./dev python tests/benchmarks/accounts_bench.py [--accounts 200] [--positions 500]
        [--signals 500] [--orders 1000] [--workers 4] [--interval-s 300] [--spread 0.1]

Each account's book: ``--positions`` positions (every 50th one share over its signal, every 125th
the wrong side: mismatches that are flagged, not repaired, so every round does the same work),
``--orders`` filled orders (one per signal with its client_order_id, the rest foreign). The
fan-out's spread is ``--spread`` (FANOUT_SPREAD) of ``--interval-s``: 30 s of a 300 s interval
by default, as deployed.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks._support import ROOT, RemoteBroker, setup_django

QTY_DRIFT_EVERY = 50  # one share more at the broker: QTY_MISMATCH, flagged
SIDE_FLIP_EVERY = 125  # short at the broker, long in the signal: SIDE_MISMATCH, flagged
BUDGET_PER_MIN = 200  # each account's rate_limit_per_min, at the broker and in the limiter
WORKER_APP = "tests.benchmarks.accounts_bench_app"  # the project's app, recording task starts
STARTS_KEY = "accounts-bench:starts"  # the workers' task starts (accounts_bench_app.py)


def name(i: int) -> str:
    return f"acct-{i:03d}"


def prefix(i: int) -> str:
    return f"a{i:03d}"


def keys(i: int) -> tuple[str, str]:
    return f"bench-key-{i:03d}", f"bench-secret-{i:03d}"


def symbol(j: int) -> str:
    return f"S{j:05d}"


def signal_id(i: int, j: int) -> str:
    return f"{prefix(i)}s{j}"


def coid(i: int, j: int) -> str:
    return f"{prefix(i)}-{signal_id(i, j)}-entry"


def accounts_world(broker, *, accounts: int, positions: int, signals: int, orders: int) -> None:
    """The paper broker's side (runs in its process): the assets, then per account its key
    pair, budget, positions and filled orders."""
    now = datetime.now(UTC)
    for j in range(max(positions, signals)):
        broker.add_asset(symbol(j), price=Decimal("10"))
    for i in range(accounts):
        api_key, secret = keys(i)
        handle = broker.add_account(
            api_key, secret, name=name(i), rate_limit_per_min=BUDGET_PER_MIN
        )
        for j in range(positions):
            qty = 10 + (1 if j % QTY_DRIFT_EVERY == 0 else 0)
            handle.seed_position(symbol(j), -qty if j % SIDE_FLIP_EVERY == 1 else qty)
        for k in range(orders):
            j = k % max(signals, 1)
            handle.seed_order(
                symbol(j),
                10,
                client_order_id=coid(i, j) if k < signals else f"ext-{i}-{k}",
                status="filled",
                filled_qty="10",
                filled_avg_price="10",
                submitted_at=now - timedelta(seconds=orders - k),
            )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_accounts_file(directory: Path, accounts: int, base_url: str) -> dict[str, str]:
    """The ACCOUNTS_FILE (acct-000 the default) and the key variables it names."""
    env: dict[str, str] = {}
    lines: list[str] = []
    for i in range(accounts):
        key_env, secret_env = f"BENCH_KEY_{i:03d}", f"BENCH_SECRET_{i:03d}"
        env[key_env], env[secret_env] = keys(i)
        lines += [
            f"[accounts.{name(i)}]",
            f'key_env = "{key_env}"',
            f'secret_env = "{secret_env}"',
            f'base_url = "{base_url}"',
            f'data_url = "{base_url}"',
            f'client_order_id_prefix = "{prefix(i)}"',
            f"rate_limit_per_min = {BUDGET_PER_MIN}",
            *(["default = true"] if i == 0 else []),
            "",
        ]
    path = directory / "accounts.toml"
    path.write_text("\n".join(lines))
    env["ACCOUNTS_FILE"] = str(path)
    return env


def seed_intent(accounts: int, signals: int) -> None:
    """Every account's ACTIVE signals (field ``account``) and their filled attempts."""
    from brokerops.intent.local import LocalSignalStore
    from orders.models import OrderAttempt

    LocalSignalStore().put_documents(
        (
            signal_id(i, j),
            {
                "account": name(i),
                "symbol": symbol(j),
                "side": "buy",
                "qty": "10",
                "order_type": "market",
                "status": "ACTIVE",
                "client_order_id": coid(i, j),
            },
        )
        for i in range(accounts)
        for j in range(signals)
    )
    OrderAttempt.objects.bulk_create(
        (
            OrderAttempt(
                account=name(i),
                client_order_id=coid(i, j),
                signal_id=signal_id(i, j),
                symbol=symbol(j),
                side="buy",
                order_type="market",
                qty=10,
                status="filled",
                broker_status="filled",
                filled_qty=10,
            )
            for i in range(accounts)
            for j in range(signals)
        ),
        batch_size=5000,
    )


def start_workers(count: int, env: dict[str, str], log_dir: Path) -> list[subprocess.Popen]:
    from django.conf import settings

    procs = []
    for w in range(count):
        log = (log_dir / f"worker-{w}.log").open("w")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", WORKER_APP, "worker", "--pool", "solo",
                 "-Q", settings.ACCOUNTS_QUEUE, "-n", f"bench{w}@%h", "--loglevel", "WARNING",
                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
    return procs


def wait_ready(app, count: int, timeout_s: float = 120.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if len(app.control.ping(timeout=1.0)) >= count:
            return time.monotonic() - started
    raise SystemExit(f"fewer than {count} workers answered within {timeout_s:.0f} s")


def fan_out_round(app, args, label: str) -> dict:
    """Fire the fan-out once; wait until every account has a finished run newer than it."""
    import redis
    from django.conf import settings

    from reconciliation.models import ReconciliationRun

    last = ReconciliationRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    starts = redis.Redis.from_url(settings.REDIS_URL)
    starts.delete(STARTS_KEY)
    fired = datetime.now(UTC)
    app.send_task(
        "accounts.fan_out",
        kwargs={"task_name": "reconciliation.run", "interval_s": args.interval_s},
        queue=settings.ACCOUNTS_QUEUE,
    )
    done = ReconciliationRun.objects.filter(pk__gt=last, finished_at__isnull=False)
    deadline = time.monotonic() + args.interval_s * 2
    while done.count() < args.accounts and time.monotonic() < deadline:
        time.sleep(0.5)
    runs = list(
        done.values(
            "account", "status", "started_at", "finished_at", "api_calls", "error", "worker"
        )
    )
    result = report(label, fired, runs, args.accounts)
    result["late"] = lateness([json.loads(e) for e in starts.lrange(STARTS_KEY, 0, -1)], runs)
    return result


def lateness(entries: list[dict], runs: list[dict]) -> dict[str, float]:
    """How long each task waited for a worker after its wave sent it, and how the runs spread
    over the workers."""
    sent = {e["account"]: e["sent"] for e in entries if "sent" in e}
    late = {e["account"]: e["started"] - sent[e["account"]]
            for e in entries if "started" in e and e["account"] in sent}  # fmt: skip
    per_worker: dict[str, int] = {}
    for r in runs:
        per_worker[r["worker"]] = per_worker.get(r["worker"], 0) + 1
    print(f"  waited for a worker        {spread_line(list(late.values()))}")
    print(f"  runs per worker            {sorted(per_worker.values(), reverse=True)}")
    return late


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spread_line(values: list[float]) -> str:
    return (
        f"p50 {pct(values, 0.5):.2f} s, p95 {pct(values, 0.95):.2f} s, "
        f"p99 {pct(values, 0.99):.2f} s, max {max(values, default=float('nan')):.2f} s"
    )


def report(label: str, fired: datetime, runs: list[dict], accounts: int) -> dict:
    durations = {r["account"]: (r["finished_at"] - r["started_at"]).total_seconds() for r in runs}
    delays = {r["account"]: (r["started_at"] - fired).total_seconds() for r in runs}
    wall = max(((r["finished_at"] - fired).total_seconds() for r in runs), default=float("nan"))
    statuses: dict[str, int] = {}
    for r in runs:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    calls = {r["account"]: r["api_calls"] for r in runs}
    busiest = max(calls, key=calls.get) if calls else None
    print(f"\n{label}: {len(runs)} of {accounts} accounts finished, {statuses}")
    print(f"  fan-out to last finished   {wall:.1f} s   (bar: < 60 s)")
    print(f"  start delay                {spread_line(list(delays.values()))}")
    print(f"  run duration               {spread_line(list(durations.values()))}")
    print(f"  busy (sum of durations)    {sum(durations.values()):.1f} s")
    print(
        f"  API calls                  {sum(calls.values())} in all; most in one account "
        f"{calls.get(busiest)} ({busiest}; budget {BUDGET_PER_MIN}/min)"
    )
    for r in runs:
        if r["status"] != "succeeded":
            print(f"  {r['account']}: {r['status']} after {durations[r['account']]:.1f} s: "
                  f"{r['error'][:160]}")  # fmt: skip
    return {"durations": durations, "delays": delays, "wall": wall, "runs": runs}


def naive_loop(accounts: int) -> float:
    """``manage.py reconcile --all``: every account's run, one after the other, here."""
    from reconciliation.services import reconciliation_run

    started = time.perf_counter()
    failed = 0
    for i in range(accounts):
        run = reconciliation_run(trigger="command", account=name(i))
        failed += run.status != "succeeded"
    wall = time.perf_counter() - started
    print(f"\none process, one account after the other: {wall:.1f} s "
          f"({wall / accounts * 1000:.0f} ms an account), {failed} not succeeded")  # fmt: skip
    return wall


def rss_line(procs: list[subprocess.Popen]) -> str:
    peaks = []
    for proc in procs:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        peaks += [int(line.split()[1]) // 1024 for line in status.splitlines() if "VmHWM" in line]
    return f"workers' peak RSS {', '.join(f'{mb} MB' for mb in peaks)}"


def compare(first: dict, second: dict, down: str) -> None:
    others = [a for a in second["durations"] if a != down]
    before = [first["durations"][a] for a in others if a in first["durations"]]
    after = [second["durations"][a] for a in others]
    print(f"\nthe others' runs, round 1 -> round 2 ({down} down):")
    for q, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        print(f"  {label} duration  {pct(before, q):.2f} s -> {pct(after, q):.2f} s "
              f"(added {pct(after, q) - pct(before, q):+.2f} s; bar: < 1 s)")  # fmt: skip
    late = [second["late"][a] for a in others if a in second["late"]]
    earlier = [first["late"][a] for a in others if a in first["late"]]
    print(f"  waited for a worker  {spread_line(earlier)} -> {spread_line(late)}")
    worker = next(r["worker"] for r in second["runs"] if r["account"] == down)
    shared = [
        r["account"] for r in second["runs"] if r["worker"] == worker and r["account"] != down
    ]
    print(
        f"  on {down}'s worker ({len(shared)} others), waited for a worker: "
        f"{spread_line([second['late'][a] for a in shared if a in second['late']])}"
    )
    failed = [r["account"] for r in second["runs"] if r["status"] != "succeeded"]
    print(f"  runs not succeeded: {failed} (expected: [{down!r}] alone)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--positions", type=int, default=500)
    parser.add_argument("--signals", type=int, default=500)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--interval-s", type=float, default=300.0)
    parser.add_argument("--spread", type=float, default=0.1, help="FANOUT_SPREAD")
    parser.add_argument("--skip-naive", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not os.environ.get("REDIS_URL"):
        sys.exit("set REDIS_URL: the workers take their tasks from Redis")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    broker_box: list[RemoteBroker] = []
    seed = {k: getattr(args, k) for k in ("accounts", "positions", "signals", "orders")}
    seeder = threading.Thread(  # the broker seeds in its process while this one seeds the store
        target=lambda: broker_box.append(
            RemoteBroker(
                "tests.benchmarks.accounts_bench:accounts_world",
                seed=seed,
                broker={"port": port, "rate_limit_per_min": BUDGET_PER_MIN},
            )
        )
    )
    seeder.start()
    with tempfile.TemporaryDirectory(prefix="accounts-bench-") as tmp:
        os.environ.update(write_accounts_file(Path(tmp), args.accounts, base_url))
        os.environ["FANOUT_SPREAD"] = str(args.spread)
        setup_django("accounts")
        run_bench(args, seeder, broker_box, Path(tmp), started)


def run_bench(args, seeder: threading.Thread, broker_box: list, tmp: Path, started: float) -> None:
    import logging

    import redis
    from django.conf import settings

    from brokerops.celery import app
    from brokerops.sim import FaultConfig

    # One CRITICAL line per finding would bury the figures.
    logging.getLogger("reconciliation").setLevel(logging.CRITICAL + 1)
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # this benchmark's own database
    seed_intent(args.accounts, args.signals)
    print(f"store seeded: {args.accounts} x {args.signals} signals "
          f"({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
    seeder.join()
    broker = broker_box[0]
    print(f"broker seeded: {args.accounts} accounts x {args.positions} positions, "
          f"{args.orders} orders ({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    workers = start_workers(args.workers, env, tmp)
    try:
        print(f"{args.workers} workers ready after {wait_ready(app, args.workers):.1f} s; "
              f"fan-out spread {args.spread * args.interval_s:.0f} s of {args.interval_s:.0f} s",
              flush=True)  # fmt: skip
        broker.call("reset_counters")
        first = fan_out_round(app, args, "round 1 (fan-out, every broker up)")
        print(f"  broker answers by status    {broker.call('status_counts')} (bar: 0 x 429)")
        print(f"  {rss_line(workers)}; load average {os.getloadavg()[0]:.1f}")
        if not args.skip_naive:
            wall = naive_loop(args.accounts)
            print(f"  ratio: one process / {args.workers} workers = {wall / first['wall']:.1f}x "
                  "(fan-out wall counted from the fan-out, spread included)")  # fmt: skip
        down = name(args.accounts // 2)
        broker.call_account(keys(args.accounts // 2)[0], "set_faults",
                            FaultConfig(seed=1, error_5xx_rate=1.0))  # fmt: skip
        broker.call("reset_counters")
        second = fan_out_round(app, args, f"round 2 ({down}'s broker answers 500 to everything)")
        print(f"  broker answers by status    {broker.call('status_counts')}")
        print(f"  load average {os.getloadavg()[0]:.1f}")
        compare(first, second, down)
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(timeout=30)
        broker.stop()


if __name__ == "__main__":
    main()
