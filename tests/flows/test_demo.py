"""The README's first command: the demo runs end to end on the embedded defaults, then stops on
Ctrl-C."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUR_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "ALPACA_API_KEY",
    "ALPACA_SECRET_KEY",
    "SIGNAL_STORE",
    "ALPACA_BASE_URL",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def query(db: Path, sql: str) -> list[tuple]:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # not migrated yet, or busy


def test_demo_shows_every_mismatch_kind_and_the_order_flow_then_stops(tmp_path):
    db = tmp_path / "demo.sqlite3"
    admin_port, broker_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in OUR_VARS}
    env["DATABASE_URL"] = f"sqlite:///{db}"
    demo = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "demo",
            "--addr",
            f"127.0.0.1:{admin_port}",
            "--broker-port",
            str(broker_port),
            "--interval",
            "3",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        kinds = wait_for(
            lambda: (
                {k for (k,) in query(db, "select distinct kind from reconciliation_mismatch")}
                >= {
                    "ORPHAN_POSITION",
                    "UNTRACKED_POSITION",
                    "QTY_MISMATCH",
                    "SIDE_MISMATCH",
                    "ORDER_NOT_FOUND",
                    "ORDER_STATUS_DRIFT",
                    "UNKNOWN_ORDER",
                    "INVALID_SIGNAL",
                }
            ),
            90,
            "a scheduled run with every mismatch kind",
        )
        assert kinds
        # The order flow: the market order fills, the invalid ones are rejected before sending.
        wait_for(
            lambda: query(
                db,
                "select status from orders_orderattempt where signal_id ="
                " 'demo-buy-aapl' and status = 'filled'",
            ),
            60,
            "a fill",
        )
        # The fill came on the trade_updates stream the demo consumes.
        wait_for(
            lambda: query(
                db,
                "select 1 from orders_orderevent where actor = 'trade_updates stream'"
                " and status_to = 'filled'",
            ),
            30,
            "a fill applied from the stream",
        )
        rejected = query(
            db,
            "select signal_id from orders_orderattempt where status ="
            " 'rejected' order by signal_id",
        )
        assert rejected == [("demo-halted",), ("demo-subpenny",)]
        login = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/admin/login/", timeout=5)
        assert login.status == 200
        grants = dict(
            query(
                db,
                "select g.name, count(p.id) from auth_group g join "
                "auth_group_permissions p on p.group_id = g.id group by g.name",
            )
        )
        assert (
            grants.get("compliance", 0) >= 4 and grants.get("operations", 0) > grants["compliance"]
        )
        users = query(
            db,
            "select u.username, g.name from auth_user u join auth_user_groups ug"
            " on ug.user_id = u.id join auth_group g on g.id = ug.group_id"
            " order by u.username",
        )
        assert users == [("compliance", "compliance"), ("operator", "operations")]
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            output, _ = demo.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
            output, _ = demo.communicate()
            raise AssertionError("the demo did not stop on Ctrl-C:\n" + output[-3000:]) from None
    assert "operator / demo-operator" in output
    assert "compliance / demo-compliance" in output
    assert f"http://127.0.0.1:{admin_port}/admin/" in output
    assert "Traceback" not in output, output[-3000:]
