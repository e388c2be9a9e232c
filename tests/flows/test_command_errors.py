"""Operator commands say what went wrong in one line (docs/design.md section 10; issue 9 items 5,
12).

``reconcile``, ``submit_orders`` and ``sync_orders`` run as real processes against a broker that
answers an HTML 502, a port nobody listens on, the paper broker with bad keys (401), and a Redis
server of the test's own that has been stopped. Each prints exactly one non-empty line on stderr,
no traceback (unless ``LOG_LEVEL=DEBUG``), exits 1, and with ``--json`` still prints its JSON
object on stdout with the failure in it.
"""

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from brokerops.sim import PaperBroker
from brokerops.sim.faults import FaultConfig
from tests.commands import start_command
from tests.environment import child_env
from tests.own_redis import start_own_redis
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"ALPACA_API_KEY": "test-key", "ALPACA_SECRET_KEY": "test-secret"}
COMMANDS = ("reconcile", "submit_orders", "sync_orders")
SIGNALS = [
    # Rests at the broker (limit far below the price): an open attempt for sync_orders.
    {
        "id": "resting-limit",
        "symbol": "AAPL",
        "side": "buy",
        "qty": "1",
        "order_type": "limit",
        "limit_price": "1.00",
        "status": "PENDING",
    },
]
PENDING = [  # loaded after the first cycle: a PENDING signal for submit_orders
    {"id": "pending-buy", "symbol": "MSFT", "side": "buy", "qty": "1", "order_type": "market",
     "status": "PENDING"},
]  # fmt: skip


def command_env(database: Path, **overrides: str) -> dict[str, str]:
    return child_env(DATABASE_URL=f"sqlite:///{database}", **{**KEYS, **overrides})


def start(command: str, *args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return start_command(command, *args, env=env, cwd=cwd, merge_stderr=False)


def finish(proc: subprocess.Popen, timeout_s: float = 120) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args} did not finish; stderr: {err}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def manage(command: str, *args: str, env: dict[str, str], cwd: Path):
    return finish(start(command, *args, env=env, cwd=cwd))


def stderr_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.strip()]


class _Html502(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center>" \
               b"<h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n" \
               b"</html>\r\n"  # fmt: skip
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture(scope="module")
def paper_broker() -> Iterator[PaperBroker]:
    with PaperBroker(default_assets=True) as broker:
        yield broker


@pytest.fixture(scope="module")
def html_502_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Html502)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# Builds the template database in one process: migrate, load a resting limit signal, one order
# cycle (its order rests at the broker: an open attempt), then load a PENDING signal.
BUILD_TEMPLATE = """
import io, json, sys, django
django.setup()
from django.core.management import call_command
first, pending = sys.argv[1:3]
call_command("migrate", "--noinput", verbosity=0)
call_command("load_signals", first, stdout=io.StringIO())
out = io.StringIO()
call_command("submit_orders", "--json", stdout=out)
call_command("load_signals", pending, stdout=io.StringIO())
print(json.dumps([s["outcome"] for s in json.loads(out.getvalue())["signals"]]))
"""


@pytest.fixture(scope="module")
def template_db(tmp_path_factory, paper_broker) -> Path:
    """A migrated SQLite database with one open order attempt and one PENDING signal."""
    folder = tmp_path_factory.mktemp("command-errors")
    db = folder / "template.sqlite3"
    (folder / "first.json").write_text(json.dumps(SIGNALS))
    (folder / "pending.json").write_text(json.dumps(PENDING))
    env = command_env(
        db, ALPACA_BASE_URL=paper_broker.base_url, ALPACA_DATA_URL=paper_broker.base_url
    )
    env["DJANGO_SETTINGS_MODULE"] = "brokerops.settings"
    done = finish(
        subprocess.Popen(
            [sys.executable, "-c", BUILD_TEMPLATE, "first.json", "pending.json"],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == ["submitted"], done.stdout
    return db


@pytest.fixture
def database(template_db, tmp_path) -> Path:
    copy = tmp_path / "brokerops.sqlite3"
    shutil.copyfile(template_db, copy)
    return copy


@pytest.fixture(scope="module")
def stopped_redis_url(tmp_path_factory) -> str:
    """The URL of a Redis server of our own that ran, then was stopped."""
    url, proc = start_own_redis(tmp_path_factory.mktemp("redis"))
    proc.terminate()
    proc.wait(timeout=10)
    return url


# Each failure: the environment it takes, and what the one line must say.
FAILURES = ("html_502", "refused", "bad_keys", "redis_down")


@pytest.fixture
def failure_env(request, paper_broker, html_502_url) -> tuple[dict[str, str], str]:
    kind = request.param
    if kind == "html_502":
        return {"ALPACA_BASE_URL": html_502_url}, "HTTP 502"
    if kind == "refused":
        return {"ALPACA_BASE_URL": f"http://127.0.0.1:{free_port()}"}, "connection refused"
    if kind == "bad_keys":
        env = {"ALPACA_BASE_URL": paper_broker.base_url, "ALPACA_API_KEY": "wrong-key",
               "ALPACA_SECRET_KEY": "wrong-secret"}  # fmt: skip
        return env, "HTTP 401"
    url = request.getfixturevalue("stopped_redis_url")
    port = url.rsplit(":", 1)[1].split("/")[0]
    env = {"ALPACA_BASE_URL": paper_broker.base_url, "REDIS_URL": url}
    return env, f"Redis at 127.0.0.1:{port} is unreachable"


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("failure_env", FAILURES, indirect=True)
def test_an_operator_error_is_one_line_on_stderr_and_in_the_json(
    command, failure_env, database, tmp_path
):
    overrides, says = failure_env
    text_db = tmp_path / "text.sqlite3"
    shutil.copyfile(database, text_db)
    # The two modes run side by side (each on its own copy of the database).
    text = start(command, env=command_env(text_db, **overrides), cwd=tmp_path)
    as_json = start(command, "--json", env=command_env(database, **overrides), cwd=tmp_path)
    text, as_json = finish(text), finish(as_json)

    for done in (text, as_json):
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        lines = stderr_lines(done)
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("CommandError: "), lines
        assert says in lines[0], lines
    report = json.loads(as_json.stdout)
    assert says in report["error"], report
    if command == "reconcile":
        assert report["status"] == "failed"
        assert set(report) >= {"run_id", "positions_seen", "signals_seen", "mismatches"}


def test_at_debug_the_traceback_comes_before_the_one_line(database, tmp_path):
    overrides = {"ALPACA_BASE_URL": f"http://127.0.0.1:{free_port()}", "LOG_LEVEL": "DEBUG"}
    runs = []
    for command in COMMANDS:
        db = tmp_path / f"{command}.sqlite3"
        shutil.copyfile(database, db)
        runs.append(start(command, env=command_env(db, **overrides), cwd=tmp_path))
    for done in map(finish, runs):
        assert done.returncode == 1, done.stderr
        assert "Traceback (most recent call last)" in done.stderr, done.stderr
        assert "BrokerUnavailable" in done.stderr
        last = stderr_lines(done)[-1]
        assert last.startswith("CommandError: ") and "connection refused" in last, last


def test_commands_that_succeed_write_nothing_on_stderr(database, paper_broker, tmp_path):
    env = command_env(
        database, ALPACA_BASE_URL=paper_broker.base_url, ALPACA_DATA_URL=paper_broker.base_url
    )
    for command in ("sync_orders", "reconcile", "submit_orders"):
        done = manage(command, "--json", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", done.stderr
        assert "error" not in json.loads(done.stdout) or not json.loads(done.stdout)["error"]


@pytest.mark.redis
def test_redis_dying_during_a_run_leaves_the_run_succeeded_and_one_warning(
    database, paper_broker, tmp_path
):
    url, server = start_own_redis(tmp_path)
    try:
        # The bulk reads are slow: Redis dies while the run holds the lock.
        paper_broker.set_faults(
            FaultConfig(latency_s=3, routes=("GET /v2/positions", "GET /v2/orders"))
        )
        paper_broker.reset_counters()
        env = command_env(
            database,
            ALPACA_BASE_URL=paper_broker.base_url,
            ALPACA_DATA_URL=paper_broker.base_url,
            REDIS_URL=url,
        )
        run = start("reconcile", "--json", "-v", "2", env=env, cwd=tmp_path)
        deadline = time.monotonic() + 60
        while not (
            paper_broker.counters().get(("GET", "/v2/positions"))
            and paper_broker.counters().get(("GET", "/v2/orders"))
        ):
            assert time.monotonic() < deadline and run.poll() is None, run.communicate()
            time.sleep(0.05)
        server.kill()
        server.wait()
        done = finish(run)
    finally:
        paper_broker.set_faults(None)
        if server.poll() is None:
            server.kill()
            server.wait()
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert json.loads(done.stdout)["status"] == "succeeded"
    lock_lines = [line for line in stderr_lines(done) if "brokerops.locks" in line]
    assert len(lock_lines) == 1, done.stderr
    assert "WARNING" in lock_lines[0] and "Redis" in lock_lines[0]
