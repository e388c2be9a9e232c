"""The README's first command: the demo runs end to end on the embedded defaults, then stops on
Ctrl-C; it serves two accounts, the desk and a client (docs/design.md section 16)."""

import http.cookiejar
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.environment import child_env
from tests.ports import free_port
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []  # not migrated yet, or busy


PROMISED_KINDS = {
    "ORPHAN_POSITION",
    "UNTRACKED_POSITION",
    "QTY_MISMATCH",
    "SIDE_MISMATCH",
    "ORDER_NOT_FOUND",
    "ORDER_STATUS_DRIFT",
    "UNKNOWN_ORDER",
    "INVALID_SIGNAL",
}


def kinds_by_run(db: Path) -> dict[tuple[int, str], set[str]]:
    """The mismatch kinds of each run, by (run, account)."""
    runs: dict[tuple[int, str], set[str]] = {}
    for run_id, account, kind in query(
        db, "select run_id, account, kind from reconciliation_mismatch"
    ):
        runs.setdefault((run_id, account), set()).add(kind)
    return runs


def succeeded_accounts(db: Path) -> set[str]:
    sql = "select account from reconciliation_reconciliationrun where status = 'succeeded'"
    return {account for (account,) in query(db, sql)}


def admin_accounts(base: str, username: str, password: str) -> dict[str, list[str]]:
    """Log in to the demo's admin as ``username``; the account column of each list's rows (the
    order attempts, the reconciliation runs)."""
    opener = logged_in(base, username, password)
    columns = {}
    for path in ("orders/orderattempt", "reconciliation/reconciliationrun"):
        html = opener.open(f"{base}/admin/{path}/", timeout=10).read().decode()
        columns[path] = re.findall(r'<td class="field-account">([^<]*)<', html)
    return columns


def logged_in(base: str, username: str, password: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    page = opener.open(f"{base}/admin/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = {"username": username, "password": password, "csrfmiddlewaretoken": token}
    form["next"] = "/admin/"
    landed = opener.open(f"{base}/admin/login/", urllib.parse.urlencode(form).encode(), timeout=10)
    # Signed in: on the admin's index, or (compliance) the open breaks list (workspace.landing).
    landed_on = landed.url.removeprefix(base)
    assert landed_on in ("/admin/", "/admin/reconciliation/break/"), f"{username}: {landed_on}"
    return opener


def test_demo_shows_every_mismatch_kind_and_the_order_flow_then_stops(tmp_path):
    db = tmp_path / "demo.sqlite3"
    admin_port, broker_port = free_port(), free_port()
    env = child_env(DATABASE_URL=f"sqlite:///{db}")
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
            # Longer than the order sync's 10 s: the gone order must reach a reconciliation run
            # before the order sync marks it missing (the demo runs one at start).
            "60",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        kinds = wait_for(
            lambda: any(kinds >= PROMISED_KINDS for kinds in kinds_by_run(db).values()),
            timeout_s=90,
            what="a run with every mismatch kind the banner promises",
            poll_s=0.5,
        )
        assert kinds
        # Both accounts: each reconciled at start (the client's book disagrees with one signal
        # and holds a position no signal names), each order flow at its own broker.
        wait_for(
            lambda: succeeded_accounts(db) >= {"desk", "client"},
            timeout_s=30,
            what="a finished run of each account",
            poll_s=0.5,
        )
        by_run = wait_for(lambda: kinds_by_run(db), what="the runs' mismatches", poll_s=0.5)
        assert {account for (_, account), k in by_run.items() if k >= PROMISED_KINDS} == {"desk"}
        client_kinds = [k for (_, account), k in by_run.items() if account == "client"]
        assert {"QTY_MISMATCH", "UNTRACKED_POSITION"} in client_kinds
        wait_for(
            lambda: query(
                db,
                "select client_order_id from orders_orderattempt where signal_id ="
                " 'client-buy-tsla' and account = 'client' and status = 'filled'",
            ),
            timeout_s=60,
            what="the client account's fill",
            poll_s=0.5,
        )
        # The order flow: the market order fills, the invalid ones are rejected before sending.
        wait_for(
            lambda: query(
                db,
                "select status from orders_orderattempt where signal_id ="
                " 'demo-buy-aapl' and status = 'filled'",
            ),
            timeout_s=60,
            what="a fill",
            poll_s=0.5,
        )
        # The fill came on the trade_updates stream the demo consumes.
        wait_for(
            lambda: query(
                db,
                "select 1 from orders_orderevent where actor = 'trade_updates stream'"
                " and status_to = 'filled'",
            ),
            timeout_s=30,
            what="a fill applied from the stream",
            poll_s=0.5,
        )
        # The watcher's workers take the PENDING signals in no set order: a rejection may come
        # after the fill.
        rejected = [("demo-halted",), ("demo-subpenny",)]
        wait_for(
            lambda: (
                query(
                    db,
                    "select signal_id from orders_orderattempt where status ="
                    " 'rejected' order by signal_id",
                )
                == rejected
            ),
            timeout_s=30,
            what=f"the rejections of {rejected}",
            poll_s=0.5,
        )
        # The demo verified the trail at start: the admin never opens on "never verified".
        assert query(db, "select ok, trigger from audit_auditverification order by id limit 1") == [
            (1, "command")
        ]
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
        assert users == [
            ("client-desk", "operations"),
            ("compliance", "compliance"),
            ("operator", "operations"),
        ]
        # The account column: the operator sees both accounts' rows, client-desk (granted the
        # client account only) the client's alone.
        base = f"http://127.0.0.1:{admin_port}"
        every = admin_accounts(base, "operator", "demo-operator")
        assert all({"desk", "client"} <= set(rows) for rows in every.values()), every
        limited = admin_accounts(base, "client-desk", "demo-client")
        assert all(rows and set(rows) == {"client"} for rows in limited.values()), limited
        # Breaks (docs/design.md section 17): opened by the first runs, seen again and one
        # cleared by the second, one proposed by operator and approved by compliance; the
        # end-of-day report page answers.
        events = {kind for (kind,) in query(db, "select kind from reconciliation_breakevent")}
        assert {"opened", "cleared", "acknowledged", "proposed", "approved"} <= events, events
        assert query(db, "select 1 from reconciliation_break where occurrences > 1")
        signed = query(
            db,
            "select proposed_by_username, approved_by_username from reconciliation_break"
            " where state = 'closed' and approved_by_username != ''",
        )
        assert signed == [("operator", "compliance")]
        report = logged_in(base, "compliance", "demo-compliance").open(
            f"{base}/admin/eod-report/", timeout=20
        )
        assert report.status == 200 and b'id="eod-totals"' in report.read()
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            output, _ = demo.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
            output, _ = demo.communicate()
            raise AssertionError("the demo did not stop on Ctrl-C:\n" + output[-3000:]) from None
    banner = next(line for line in output.splitlines() if "found every mismatch kind" in line)
    assert all(kind in banner for kind in PROMISED_KINDS), banner
    assert "operator / demo-operator" in output
    assert "compliance / demo-compliance" in output
    assert "client-desk / demo-client   (operations, sees the client account only)" in output
    assert "desk (the default) and client" in output
    assert f"http://127.0.0.1:{admin_port}/admin/" in output
    breaks = next(line for line in output.splitlines() if line.strip().startswith("Breaks:"))
    assert "was proposed by operator and approved by compliance" in breaks, breaks
    split = next(line for line in output.splitlines() if line.strip().startswith("Explained:"))
    assert "demo-aapl followed the split (1 signal(s) moved)" in split, split
    assert "it now expects 40, and the run found no break on the holding" in split, split
    assert "Traceback" not in output, output[-3000:]


@pytest.mark.django_db(transaction=True)
def test_the_paper_brokers_demo_scenario_is_the_demos_broker():
    """``python -m brokerops.sim --scenario demo`` (which an error message suggests) holds what
    the demo's broker holds: reconciling the demo's own signals and attempts against it finds
    every promised kind and closes no signal but the demo's designed orphan."""
    from brokerops.intent.local import LocalSignalStore
    from brokerops.sim.__main__ import broker_from_args
    from brokerops.sim.scenarios import DEMO_DRIFT_CLIENT_ORDER_ID
    from demo.world import DEMO_ORPHANS, seed_demo_records
    from reconciliation.models import Mismatch
    from reconciliation.services import reconciliation_run
    from tests.integration.conftest import gateway_for

    broker, scenario = broker_from_args(["--scenario", "demo", "--port", "0"])
    assert scenario == "demo"
    with broker:
        gateway = gateway_for(broker)
        store = LocalSignalStore()
        drift = gateway.get_order_by_client_id(DEMO_DRIFT_CLIENT_ORDER_ID)
        seed_demo_records(store=store, drift_order_id=drift.id)

        run = reconciliation_run(trigger="command", gateway=gateway, store=store)
        gateway.close()

    assert run.status == "succeeded", run.error
    mismatches = list(run.mismatches.select_related("outcome"))
    assert {m.kind for m in mismatches} == PROMISED_KINDS
    closed = {
        m.signal_id for m in mismatches if m.outcome_action == Mismatch.Action.SIGNAL_CLOSED_MANUAL
    }
    assert closed == DEMO_ORPHANS
    assert {s.id for s in store.read_all().signals if s.status == "CLOSED_MANUAL"} == DEMO_ORPHANS


@pytest.mark.django_db
def test_the_client_account_is_ready_beside_the_desk():
    """The two-account demo's client (docs/design.md section 16): the client's book is its
    own on the demo's broker, under its own keys, and its signals name the account ``client``
    (they parse as valid signals of it); the desk's book and signals are as they were."""
    from alpaca.trading.client import TradingClient

    from brokerops.intent.local import LocalSignalStore
    from brokerops.sim import PaperBroker
    from demo.world import (
        DEMO_CLIENT_ACCOUNT,
        DEMO_CLIENT_KEYS,
        client_signals,
        demo_signals,
        seed_client_account,
        seed_demo,
    )

    store = LocalSignalStore()
    with PaperBroker() as broker:
        seed_demo(broker=broker, store=store)
        desk_positions = broker.positions()
        seed_client_account(broker, store=store)
        client = TradingClient(*DEMO_CLIENT_KEYS, paper=True, url_override=broker.base_url)
        held = {p.symbol: p.qty for p in client.get_all_positions()}
        assert broker.positions() == desk_positions

    assert held == {"MSFT": "20", "AAPL": "5", "SPY": "2"}
    read = store.read_all()
    client_ids = {s.id for s in read.signals if s.account == DEMO_CLIENT_ACCOUNT}
    desk_ids = {s.id for s in read.signals if s.account is None} | {s.id for s in read.invalid}
    assert client_ids == {i for i, _ in client_signals()}
    assert desk_ids == {i for i, _ in demo_signals()}  # the desk's, one invalid, as before
