"""Start, stop, restart without leaks; the command line; concurrency; benchmark-scale seeding."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from brokerops.sim import PaperBroker

from .helpers import AUTH, Raw, broker_threads

REPO = Path(__file__).resolve().parents[2]


def test_base_url_and_context_manager() -> None:
    with PaperBroker() as broker:
        assert broker.base_url == f"http://127.0.0.1:{broker.port}"
        assert not broker.base_url.endswith("/v2")
        assert requests.get(broker.base_url + "/v2/account", headers=AUTH, timeout=5).ok
    assert not broker.running
    with pytest.raises(RuntimeError):
        _ = broker.base_url


def test_many_restarts_leak_no_threads_and_keep_state() -> None:
    before = broker_threads()
    broker = PaperBroker(default_assets=True)
    for _ in range(20):
        broker.start()
        session = requests.Session()  # keep-alive connection left open on purpose
        assert session.get(broker.base_url + "/v2/account", headers=AUTH, timeout=5).ok
        broker.stop()
        session.close()
    broker.stop()  # idempotent
    assert broker_threads() <= before  # none of its threads outlives it
    broker.seed_position("AAPL", 1)
    with broker:
        raw = Raw(broker.base_url)
        assert raw.get("/v2/positions/AAPL").json()["qty"] == "1"
        raw.close()


def test_restart_on_the_same_port() -> None:
    broker = PaperBroker().start()
    port = broker.port
    broker.stop()
    second = PaperBroker(port=port).start()
    try:
        assert second.port == port
    finally:
        second.stop()


def test_unknown_paths_and_methods(raw: Raw) -> None:
    missing = raw.get("/v2/watchlists")
    assert missing.status_code == 404
    assert missing.text == "404 page not found"
    assert raw.request("PATCH", "/v2/account").status_code == 405


def test_concurrent_clients(paper_broker: PaperBroker) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        raw = Raw(paper_broker.base_url)
        try:
            for i in range(25):
                body = {
                    "symbol": "AAPL",
                    "qty": "1",
                    "side": "buy",
                    "type": "market",
                    "time_in_force": "day",
                    "client_order_id": f"w{n}-{i}",
                }
                response = raw.post("/v2/orders", json=body)
                assert response.status_code == 200, response.text
                assert response.json()["status"] == "pending_new"
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            errors.append(error)
        finally:
            raw.close()

    # 8 x 25 = 200 orders: exactly the default limit of 200 requests a minute for the one key,
    # so nothing else here goes over HTTP.
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert paper_broker.settle(timeout=5)
    assert paper_broker.position("AAPL")["qty"] == "200"  # type: ignore[index]
    assert {o["status"] for o in paper_broker.orders()} == {"filled"}
    assert len({o["client_order_id"] for o in paper_broker.orders()}) == 200


def test_benchmark_scale_seeding_and_bulk_reads(raw: Raw, paper_broker: PaperBroker) -> None:
    for i in range(10_000):
        symbol = f"B{i:05d}"
        paper_broker.add_asset(symbol, price="25.5")
        paper_broker.seed_position(symbol, (i % 9 + 1) * (1 if i % 4 else -1), "24")
    base = datetime(2024, 1, 2, tzinfo=UTC)
    for i in range(20_000):
        paper_broker.seed_order(
            f"B{i % 10_000:05d}",
            1,
            status="filled" if i % 3 else "new",
            client_order_id=f"bench-{i}",
            submitted_at=base + timedelta(milliseconds=i),
        )
    positions = raw.get("/v2/positions").json()
    assert len(positions) == 10_000
    assert sum(1 for p in positions if p["side"] == "short") == 2_500

    count, params = 0, {"status": "all", "limit": 500}
    while True:
        page = raw.get("/v2/orders", params=params).json()
        count += len(page)
        if len(page) < 500:
            break
        params["until"] = page[-1]["submitted_at"]
    assert count == 20_000
    # How fast the broker seeds and serves this is the benchmarks' business
    # (tests/benchmarks/reconcile_bench.py prints it); a clock here only fails on a loaded machine.


def test_command_line_serves_the_demo_scenario() -> None:
    with PaperBroker() as probe:
        port = probe.port  # a port that was free a moment ago
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    command = [sys.executable, "-m", "brokerops.sim", "--port", str(port)]
    command += ["--scenario", "demo", "--rate-limit-per-min", "100"]
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line, process.stderr.read() if process.stderr else ""
        response = requests.get(f"http://127.0.0.1:{port}/v2/positions", headers=AUTH, timeout=5)
        assert response.headers["X-RateLimit-Limit"] == "100"
        assert {p["symbol"] for p in response.json()} == {"AAPL", "MSFT", "TSLA", "SPY", "BTCUSD"}
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
