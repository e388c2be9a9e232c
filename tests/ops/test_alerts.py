"""Alerts (docs/design.md section 13) received by a real SMTP server (aiosmtpd) and a local HTTP
receiver: one message per event, no secrets, retried in the background, never blocking a run."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import environ
import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from alerts.models import Alert
from alerts.services import (
    alert_key,
    alerts_check_stale_runs,
    alerts_deliver,
    alerts_deliver_due,
    alerts_raise,
    clean_text,
    retry_delay_s,
)
from alerts.tasks import alerts_check_stale_runs_task, alerts_deliver_due_task
from audit import triggers
from audit.services import audit_verify, chain_heads_record
from brokerops.celery import beat_schedule
from orders.models import OrderEvent
from reconciliation.models import ReconciliationRun
from reconciliation.services import reconciliation_run
from tests import factories
from tests.audit._trail import write_trail
from tests.integration.conftest import KEY_ID, SECRET, broker, gateway, gateway_for, store
from tests.ports import free_port
from tests.waiting import wait_for

API_KEY = "AKALERTTESTKEY0001"
API_SECRET = "alert-test-secret-9f8e7d6c5b4a"
Delivery = Alert.Delivery
__all__ = ["broker", "gateway", "store"]  # the integration fixtures, used here


class Mailbox:
    """aiosmtpd's handler: every message the SMTP server accepted."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.raw: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.raw.append(envelope.content)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp(settings):
    """A real SMTP server on loopback; mail settings from an ``EMAIL_URL`` as in production."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    for name, value in environ.Env.email_url_config(f"smtp://127.0.0.1:{port}").items():
        setattr(settings, name, value)
    settings.ALERT_EMAILS = ["ops@example.com", "desk@example.com"]
    settings.DEFAULT_FROM_EMAIL = "brokerops@example.com"
    yield mailbox
    controller.stop()


class Receiver:
    """A webhook receiver: records each POST's JSON; answers ``status``; can go down and up on
    the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.status = 200
        self.posts: list[tuple[int, dict, str]] = []  # (status answered, body, content type)
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T0/B0/hook-secret-path"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.posts.append((receiver.status, body, self.headers["Content-Type"]))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver(settings):
    running = Receiver()
    settings.ALERT_WEBHOOK_URL = running.url
    yield running
    running.down()


@pytest.fixture
def secrets(settings):
    settings.ALPACA_API_KEY = API_KEY
    settings.ALPACA_SECRET_KEY = API_SECRET
    settings.ALERT_RETRY_BASE_S = 0.2
    settings.ALERT_RETRY_MAX_S = 1.0


def active(symbol: str, qty: str) -> dict:
    return {
        "symbol": symbol,
        "side": "buy",
        "qty": qty,
        "order_type": "market",
        "status": "ACTIVE",
    }


@pytest.fixture
def orphan(broker, store, settings):
    """An ACTIVE ETH/USD signal the broker holds nothing for, left flagged run after run (no
    confirmation budget: it is never closed), next to a position that agrees."""
    settings.RECONCILE_MAX_CONFIRMATIONS = 0
    broker.seed_position("AAPL", 10)
    store.put_documents([("s-aapl", active("AAPL", "10")), ("s-eth", active("ETH/USD", "2"))])
    return broker


def run(gateway, store) -> ReconciliationRun:
    return reconciliation_run(trigger="schedule", gateway=gateway, store=store)


def assert_no_secret(text: str) -> None:
    for secret in (API_KEY, API_SECRET, KEY_ID, SECRET, "hook-secret-path"):
        assert secret not in text


# --- Reconciliation runs, end to end (paper broker over loopback, real alpaca-py) ---------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("store", ["local"], indirect=True)
def test_an_orphan_found_by_two_consecutive_runs_is_mailed_once_without_secrets(
    orphan, gateway, store, smtp, secrets
):
    first, second = run(gateway, store), run(gateway, store)

    assert [r.status for r in (first, second)] == ["succeeded", "succeeded"]
    assert [r.summary["by_kind"] for r in (first, second)] == [{"ORPHAN_POSITION": 1}] * 2
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["Subject"] == "[brokerops] Orphan position: ETHUSD (signal s-eth)"
    assert message["To"] == "ops@example.com, desk@example.com"
    assert message["From"] == "brokerops@example.com"
    text = message.get_payload(decode=True).decode()
    assert "Signal s-eth expects a position in ETHUSD (qty 2)" in text
    assert f"run #{first.pk}" in text
    assert_no_secret(smtp.raw[0].decode())
    alert = Alert.objects.get()
    assert (alert.kind, alert.times_seen, alert.notifications) == ("ORPHAN_POSITION", 2, 1)
    assert (alert.email_status, alert.email_attempts) == (Delivery.SENT, 1)
    assert alert.webhook_status == Delivery.SKIPPED  # no ALERT_WEBHOOK_URL


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("store", ["local"], indirect=True)
def test_a_resolved_orphan_that_comes_back_is_a_new_message(orphan, gateway, store, smtp, secrets):
    run(gateway, store)
    store.put_documents([("s-eth", {**active("ETH/USD", "2"), "status": "CLOSED"})])
    cleared = run(gateway, store)
    assert cleared.mismatches_found == 0
    assert Alert.objects.get().resolved_at is not None
    assert len(smtp.messages) == 1

    store.put_documents([("s-eth", active("ETH/USD", "2"))])
    run(gateway, store)

    assert len(smtp.messages) == 2
    alert = Alert.objects.get()
    assert (alert.resolved_at, alert.times_seen, alert.notifications) == (None, 1, 2)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("store", ["local"], indirect=True)
def test_the_webhook_receives_slack_compatible_json(orphan, gateway, store, receiver, secrets):
    receiver.up()
    run(gateway, store)
    run(gateway, store)

    assert len(receiver.posts) == 1
    _, body, content_type = receiver.posts[0]
    assert content_type == "application/json"
    assert body["text"].startswith("*[brokerops] Orphan position: ETHUSD (signal s-eth)*\n")
    fields = body["brokerops"]
    assert (fields["kind"], fields["subject"]) == (
        "ORPHAN_POSITION",
        "Orphan position: ETHUSD (signal s-eth)",
    )
    assert fields["key"] == "ORPHAN_POSITION:ETHUSD:s-eth"
    assert_no_secret(json.dumps(body))
    assert Alert.objects.get().webhook_status == Delivery.SENT


@pytest.fixture
def worker(settings):
    """A real Celery worker (a thread of this process, on Redis when REDIS_URL is set): tasks
    are queued, not run inline."""
    from celery.contrib.testing.worker import start_worker

    from brokerops.celery import app

    app.conf.task_always_eager = False
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, queues=["default"]) as w:
            yield w
    finally:
        app.conf.task_always_eager = True


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("store", ["local"], indirect=True)
def test_a_receiver_answering_500_is_retried_by_the_worker_until_it_takes_the_alert(
    orphan, gateway, store, receiver, secrets, worker
):
    receiver.status = 500
    receiver.up()

    started = time.perf_counter()
    finished = run(gateway, store)
    elapsed = time.perf_counter() - started

    assert finished.status == "succeeded" and elapsed < 5  # queued, not sent, by the run
    wait_for(  # the first attempt and at least one retry
        lambda: len(receiver.posts) >= 2, timeout_s=20.0, what="a retry of the webhook"
    )
    receiver.status = 200
    wait_for(
        lambda: Alert.objects.get().webhook_status == Delivery.SENT,
        timeout_s=20.0,
        what="the webhook delivered",
    )

    alert = Alert.objects.get()
    assert [s for s, _, _ in receiver.posts][-1] == 200
    assert all(s == 500 for s, _, _ in receiver.posts[:-1])
    assert alert.webhook_attempts == len(receiver.posts) >= 3
    assert alert.last_error.startswith("webhook: attempt ") and "HTTP 500" in alert.last_error
    assert len({json.dumps(body) for _, body, _ in receiver.posts}) == 1  # the same message


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("store", ["local"], indirect=True)
def test_a_receiver_that_is_down_does_not_hold_the_run_and_the_sweep_sends_once_it_is_up(
    orphan, gateway, store, receiver, secrets, settings
):
    # Tasks run eagerly here (no worker): the first attempt is made after the run was recorded,
    # fails at once on the closed port, and the retry is left to beat's sweep.
    settings.ALERT_RETRY_BASE_S = settings.ALERT_RETRY_MAX_S = 30
    started = time.perf_counter()
    finished = run(gateway, store)
    elapsed = time.perf_counter() - started

    assert finished.status == "succeeded" and elapsed < 5
    alert = Alert.objects.get()
    assert (alert.webhook_status, alert.webhook_attempts) == (Delivery.PENDING, 1)
    assert alert.last_error == "webhook: attempt 1: ConnectionError"  # never the URL
    assert alerts_deliver_due_task() == 0  # not due yet (backoff)

    receiver.up()
    assert alerts_deliver_due(now=timezone.now() + timedelta(seconds=31)) == 1

    assert len(receiver.posts) == 1
    alert.refresh_from_db()
    assert (alert.webhook_status, alert.webhook_attempts) == (Delivery.SENT, 2)
    assert alerts_deliver_due_task() == 0  # sent once


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("store", ["local"], indirect=True)
def test_a_failed_run_alerts_once_per_failure_streak(broker, gateway, store, smtp, secrets):
    dead = gateway_for(
        SimpleNamespace(base_url=f"http://{KEY_ID}:{API_SECRET}@127.0.0.1:{free_port()}")
    )
    failed = [run(dead, store) for _ in range(2)]

    assert [r.status for r in failed] == ["failed", "failed"]
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["Subject"] == f"[brokerops] Reconciliation run #{failed[0].pk} failed"
    text = message.get_payload(decode=True).decode()
    assert "BrokerUnavailable" in text and "connection refused" in text
    assert_no_secret(smtp.raw[0].decode())

    assert run(gateway, store).status == "succeeded"  # resolves it
    assert Alert.objects.get(kind="RUN_FAILED").resolved_at is not None
    run(dead, store)
    assert len(smtp.messages) == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("store", ["local"], indirect=True)
def test_a_dry_run_raises_no_alert(orphan, gateway, store, smtp):
    reconciliation_run(trigger="command", gateway=gateway, store=store, dry_run=True)
    assert not Alert.objects.exists() and smtp.messages == []


# --- No successful run for three intervals (beat's check) ---------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_stale_check_alerts_once_per_outage_of_three_intervals_and_not_before(smtp, settings):
    settings.RECONCILE_INTERVAL_S = 300
    now = timezone.now()
    factories.reconciliation_run(started_at=now - timedelta(seconds=5), finished_at=now)
    interval = timedelta(seconds=300)

    assert alerts_check_stale_runs(now=now + 2.9 * interval) is None
    assert smtp.messages == []
    raised = alerts_check_stale_runs(now=now + 3.1 * interval)
    assert raised is not None and raised.notified
    later = [alerts_check_stale_runs(now=now + k * interval) for k in (4, 10, 100)]
    assert [r.notified for r in later] == [False, False, False]  # once per outage, no re-alert

    assert len(smtp.messages) == 1
    assert smtp.messages[0]["Subject"] == "[brokerops] No successful reconciliation run for 15 min"
    alert = Alert.objects.get()
    assert (alert.kind, alert.times_seen) == ("RUNS_STALE", 4)

    # A success ends the outage; the next one is a new message.
    back = now + 101 * interval
    factories.reconciliation_run(started_at=back, finished_at=back)
    assert alerts_check_stale_runs(now=back + interval) is None
    assert Alert.objects.get().resolved_at is not None
    assert alerts_check_stale_runs(now=back + 4 * interval).notified
    assert len(smtp.messages) == 2


@pytest.mark.django_db(transaction=True)
def test_the_stale_check_counts_from_the_first_run_when_none_succeeded(smtp, settings):
    settings.RECONCILE_INTERVAL_S = 60
    assert alerts_check_stale_runs_task() is False  # no run at all: nothing to compare
    long_ago = timezone.now() - timedelta(minutes=10)
    factories.reconciliation_run(status="failed", started_at=long_ago, finished_at=long_ago)

    assert alerts_check_stale_runs_task() is True
    assert "none has succeeded yet" in smtp.messages[0].get_payload(decode=True).decode()


def test_beat_schedules_the_stale_check_every_reconcile_interval_and_the_sweep(settings):
    schedule = beat_schedule()
    assert schedule["alerts-stale-runs"]["task"] == "alerts.check_stale_runs"
    assert schedule["alerts-stale-runs"]["schedule"] == float(settings.RECONCILE_INTERVAL_S)
    assert schedule["alerts-deliver-due"]["task"] == "alerts.deliver_due"
    assert schedule["alerts-deliver-due"]["schedule"] == float(settings.ALERT_SWEEP_INTERVAL_S)


# --- A broken audit chain ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_broken_audit_chain_alerts_once_and_the_verification_is_stored(
    smtp, settings, django_capture_on_commit_callbacks
):
    settings.AUDIT_HMAC_KEY = "audit-hmac-key-for-alert-test"
    write_trail(events=6)
    chain_heads_record(recorded_by="reconciliation run #1")
    with django_capture_on_commit_callbacks(execute=True):
        assert audit_verify(trigger="command", processes=1).ok
    assert smtp.messages == []

    triggers.remove(
        SimpleNamespace(connection=__import__("django.db").db.connection), ["orders_orderevent"]
    )
    target = OrderEvent.objects.order_by("pk").values_list("pk", flat=True)[2]
    OrderEvent.objects.filter(pk=target).update(message="forged")
    with django_capture_on_commit_callbacks(execute=True):
        results = [audit_verify(trigger="schedule", processes=1) for _ in range(2)]

    assert [r.ok for r in results] == [False, False]
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["Subject"] == "[brokerops] Audit trail broken: 1 problem(s)"
    text = smtp.messages[0].get_payload(decode=True).decode()
    assert f"order_events row {target}: content does not match its hash" in text
    assert "audit-hmac-key-for-alert-test" not in smtp.raw[0].decode()
    assert Alert.objects.get().times_seen == 2


# --- Deduplication, retries and redaction, service level ------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_open_alert_is_sent_again_after_the_realert_period(smtp, settings):
    settings.ALERT_REALERT_S = 3600
    now = timezone.now()
    sent = [
        alerts_raise(kind="ORPHAN_POSITION", key="k", subject="s", body="b", now=now + d).notified
        for d in (timedelta(0), timedelta(minutes=59), timedelta(minutes=61), timedelta(minutes=62))
    ]
    assert sent == [True, False, True, False]
    assert len(smtp.messages) == 2


@pytest.mark.django_db(transaction=True)
def test_delivery_gives_up_after_the_last_attempt(receiver, settings):
    settings.ALERT_MAX_ATTEMPTS = 2
    settings.ALERT_RETRY_BASE_S = 0.05
    raised = alerts_raise(kind="RUN_FAILED", key="k", subject="s", body="b")  # 1st: refused
    # The retry is due now (not after ALERT_RETRY_BASE_S of sleeping).
    Alert.objects.filter(pk=raised.alert.pk).update(webhook_next_attempt_at=timezone.now())
    result = alerts_deliver(alert_id=raised.alert.pk, channel="webhook")

    assert (result.status, result.retry_in_s) == (Delivery.FAILED, None)
    alert = Alert.objects.get()
    assert (alert.webhook_status, alert.webhook_attempts, alert.webhook_next_attempt_at) == (
        Delivery.FAILED, 2, None,
    )  # fmt: skip
    assert alerts_deliver(alert_id=alert.pk, channel="webhook").status == Delivery.FAILED
    assert Alert.objects.get().webhook_attempts == 2  # no third attempt


def test_retry_delays_double_up_to_the_cap(settings):
    settings.ALERT_RETRY_BASE_S = 30
    settings.ALERT_RETRY_MAX_S = 300
    assert [retry_delay_s(n) for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]


def test_alert_text_never_carries_credentials(settings):
    settings.ALPACA_SECRET_KEY = API_SECRET
    settings.EMAIL_HOST_PASSWORD = "smtp-password-123"
    settings.ALERT_WEBHOOK_URL = "https://hooks.example/services/T0/B0/hook-secret-path"
    text = clean_text(
        f"failed: secret={API_SECRET} smtp-password-123 postgres://bo:pw-in-url@db:5432/x "
        "posting to https://hooks.example/services/T0/B0/hook-secret-path"
    )
    assert API_SECRET not in text and "smtp-password-123" not in text
    assert "pw-in-url" not in text and "hook-secret-path" not in text
    assert "postgres://[redacted]@db:5432/x" in text


def test_a_key_longer_than_the_column_keeps_its_start_and_a_digest():
    long = "ORPHAN_POSITION:AAPL:" + "s" * 1500
    key = alert_key(long)
    assert len(key) == 255 and key.startswith("ORPHAN_POSITION:AAPL:sss")
    assert key != alert_key(long + "x") and key == alert_key(long)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("store", ["local"], indirect=True)
def test_a_delivery_that_cannot_be_queued_is_logged_and_sent_by_the_sweep(
    orphan, gateway, store, smtp, secrets, monkeypatch, caplog
):
    from kombu.exceptions import OperationalError

    from alerts.tasks import alerts_deliver_task

    def broker_down(**_):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(alerts_deliver_task, "delay", broker_down)
    finished = run(gateway, store)

    assert finished.status == "succeeded"
    assert "delivery not queued; beat's sweep sends it" in caplog.text
    alert = Alert.objects.get()
    assert (alert.email_status, alert.email_attempts) == (Delivery.PENDING, 0)
    assert smtp.messages == []

    assert alerts_deliver_due_task() == 1
    assert len(smtp.messages) == 1


SETTINGS_PROBE = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({n: getattr(settings, n) for n in (
    "EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_USE_TLS",
    "EMAIL_TIMEOUT", "ALERT_EMAILS", "ALERT_WEBHOOK_URL", "ALERT_REALERT_S",
    "ALERT_MAX_ATTEMPTS")}))
"""


def load_settings(tmp_path, **env_vars: str):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALERT_", "EMAIL_"))}
    env.update(env_vars, DJANGO_SETTINGS_MODULE="brokerops.settings", PYTHONPATH=str(root))
    return subprocess.run(
        [sys.executable, "-c", SETTINGS_PROBE], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


def test_mail_and_alert_settings_come_from_the_environment(tmp_path):
    default = json.loads(load_settings(tmp_path).stdout)
    assert default["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert (default["ALERT_EMAILS"], default["ALERT_WEBHOOK_URL"]) == ([], None)
    assert (default["ALERT_REALERT_S"], default["ALERT_MAX_ATTEMPTS"]) == (86400, 8)

    done = load_settings(
        tmp_path,
        EMAIL_URL="smtp+tls://alerts%40example.com:pw@mail.example:587",
        ALERT_EMAILS="ops@example.com,desk@example.com",
        ALERT_WEBHOOK_URL="https://hooks.example/T/B/x",
        ALERT_TIMEOUT_S="4",
    )
    found = json.loads(done.stdout)
    assert found["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (found["EMAIL_HOST"], found["EMAIL_PORT"], found["EMAIL_USE_TLS"]) == (
        "mail.example", 587, True,
    )  # fmt: skip
    assert (found["EMAIL_HOST_USER"], found["EMAIL_TIMEOUT"]) == ("alerts@example.com", 4.0)
    assert found["ALERT_EMAILS"] == ["ops@example.com", "desk@example.com"]
    assert found["ALERT_WEBHOOK_URL"] == "https://hooks.example/T/B/x"


def test_a_bad_alert_setting_fails_at_start_naming_it(tmp_path):
    done = load_settings(tmp_path, ALERT_MAX_ATTEMPTS="0")
    assert done.returncode != 0 and "ALERT_MAX_ATTEMPTS" in done.stderr


@pytest.mark.django_db
def test_operations_see_the_alerts_read_only_in_the_admin(client, django_user_model):
    from django.contrib.auth.models import Group

    alerts_raise(kind="ORPHAN_POSITION", key="k", subject="Orphan position: AAPL", body="b")
    user = django_user_model.objects.create_user("op", password="pw-op-123456", is_staff=True)
    user.groups.add(Group.objects.get(name="operations"))
    client.force_login(user)

    page = client.get("/admin/alerts/alert/")
    assert page.status_code == 200 and b"Orphan position: AAPL" in page.content
    alert = Alert.objects.get()
    detail = client.get(f"/admin/alerts/alert/{alert.pk}/change/")
    assert detail.status_code == 200 and b"Save" not in detail.content
    assert client.get("/admin/alerts/alert/add/").status_code == 403
    assert client.post(f"/admin/alerts/alert/{alert.pk}/delete/").status_code == 403
