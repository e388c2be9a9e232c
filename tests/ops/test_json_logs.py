"""``LOG_FORMAT=json``: one JSON object per log line, with the run id and client_order_id as
fields (docs/design.md section 13)."""

import io
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from brokerops.intent.local import LocalSignalStore
from brokerops.logs import JsonFormatter, current_log_context, log_context
from brokerops.sim import PaperBroker
from reconciliation.models import Mismatch
from reconciliation.services import reconciliation_run
from tests.commands import database_url_of_this_test
from tests.environment import child_env
from tests.integration.conftest import KEY_ID, SECRET, gateway_for

ROOT = Path(__file__).resolve().parents[2]


def record(message="hello %s", args=("world",), level=logging.INFO, exc_info=None, **extra):
    rec = logging.LogRecord("brokerops.test", level, __file__, 1, message, args, exc_info)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_a_record_is_one_json_object_with_the_named_fields():
    line = JsonFormatter().format(record())
    payload = json.loads(line)
    assert list(payload) == ["ts", "level", "logger", "message"]
    assert payload["level"] == "INFO"
    assert payload["logger"] == "brokerops.test"
    assert payload["message"] == "hello world"
    ts = datetime.fromisoformat(payload["ts"])
    assert ts.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - ts).total_seconds()) < 60


def test_the_context_adds_run_id_and_client_order_id_and_extra_wins():
    formatter = JsonFormatter()
    with log_context(run_id=42):
        with log_context(client_order_id="bo-s1-entry"):
            inner = json.loads(formatter.format(record()))
            assert current_log_context() == {"run_id": 42, "client_order_id": "bo-s1-entry"}
        passed = json.loads(formatter.format(record(client_order_id="bo-s2-entry")))
        after_inner = json.loads(formatter.format(record()))
    outside = json.loads(formatter.format(record()))
    assert inner["run_id"] == 42 and inner["client_order_id"] == "bo-s1-entry"
    assert passed["client_order_id"] == "bo-s2-entry"
    assert "client_order_id" not in after_inner and after_inner["run_id"] == 42
    assert "run_id" not in outside
    assert current_log_context() == {}


def test_a_traceback_is_a_string_field_and_the_record_stays_one_line():
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        rec = record("failed", (), level=logging.ERROR, exc_info=sys.exc_info())
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    payload = json.loads(line)
    assert payload["exc_info"].startswith("Traceback (most recent call last)")
    assert "ValueError: bad\nvalue" in payload["exc_info"]


@pytest.mark.django_db(transaction=True)
def test_a_reconciliation_run_logs_json_lines_carrying_its_run_id():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    store = LocalSignalStore()
    try:
        with PaperBroker(default_assets=True) as broker:
            broker.seed_position("MSFT", 5)  # untracked
            store.put_documents(
                [("s-gone", {"symbol": "AAPL", "side": "buy", "qty": "3",
                             "order_type": "market", "status": "ACTIVE"})]
            )  # fmt: skip
            gateway = gateway_for(broker)
            try:
                run = reconciliation_run(trigger="command", gateway=gateway, store=store)
            finally:
                gateway.close()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert run.status == "succeeded", run.error
    assert run.mismatches.filter(kind=Mismatch.Kind.ORPHAN_POSITION).exists()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    ours = [line for line in lines if line["logger"].startswith("reconciliation")]
    assert ours, lines
    assert all(line["run_id"] == run.pk for line in ours), ours
    assert any(line["level"] == "CRITICAL" for line in ours)


@pytest.mark.django_db(transaction=True)
def test_manage_reconcile_with_log_format_json_writes_only_json_lines():
    """The settings' LOGGING end to end: a real ``reconcile -v 2`` process with
    ``LOG_FORMAT=json`` (on the test database) writes nothing on stderr but JSON objects, its
    run's lines with its id."""
    LocalSignalStore().put_documents(
        [("s-gone", {"symbol": "AAPL", "side": "buy", "qty": "3",
                     "order_type": "market", "status": "ACTIVE"})]
    )  # fmt: skip
    with PaperBroker(default_assets=True) as broker:
        env = child_env(
            DATABASE_URL=database_url_of_this_test(),
            ALPACA_API_KEY=KEY_ID,
            ALPACA_SECRET_KEY=SECRET,
            ALPACA_BASE_URL=broker.base_url,
            LOG_FORMAT="json",
        )
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "reconcile", "--json", "-v", "2"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert lines
    assert {"ts", "level", "logger", "message"} <= set(lines[0])
    ours = [line for line in lines if line["logger"].startswith("reconciliation")]
    assert ours and all(line["run_id"] == run_id for line in ours), lines
    assert any(line["level"] == "CRITICAL" for line in ours)
