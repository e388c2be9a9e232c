"""Alerts never hold up the work (docs/design.md section 13): one wall-clock deadline for a whole
delivery, however slowly the receiver answers, and every delivery made after the run released
its lock. Receivers on loopback: a trickling HTTP server, a silent one, a trickling SMTP server,
and a real SMTP server (aiosmtpd) that answers."""

from __future__ import annotations

import socket
import threading

import pytest

from alerts.models import Alert
from brokerops.locks import single_flight
from reconciliation.services import run_lock_name
from tests.integration.conftest import broker, gateway, store
from tests.ops.test_alerts import active, run, secrets, smtp
from tests.waiting import wait_for

Delivery = Alert.Delivery
LOCK = run_lock_name("default")  # the runs' lock of the one account
__all__ = ["broker", "gateway", "secrets", "smtp", "store"]  # fixtures used here
HTTP_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + b" " * 200
SMTP_GREETING = b"220 slow.example ESMTP " + b"." * 200 + b"\r\n"


class Trickler:
    """Takes connections on loopback; for each, reads what the client sends first (unless it
    greets first, as SMTP does), notes whether the reconciliation lock is free at that moment,
    then sends ``answer`` one byte every ``every_s``: each read gets a byte well within any
    per-read timeout, the answer never completes within one. ``answer`` None: never answers."""

    def __init__(self, answer: bytes | None, *, greets: bool = False, every_s: float = 0.2):
        self.answer, self.greets, self.every_s = answer, greets, every_s
        self.connections = 0
        self.lock_free: list[bool] = []
        self.cut_off: list[int] = []  # bytes sent when the client hung up, per connection
        self._server = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def port(self) -> int:
        return self._server.getsockname()[1]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            if not self.greets:
                conn.recv(65536)
            with single_flight(LOCK) as acquired:
                self.lock_free.append(acquired)
            if self.answer is None:
                self._stop.wait()
                return
            for sent, byte in enumerate(self.answer):
                if self._stop.wait(self.every_s):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    self.cut_off.append(sent)
                    return

    def close(self) -> None:
        self._stop.set()
        self._server.close()


@pytest.fixture
def receiver(settings):
    servers: list[Trickler] = []

    def start(answer: bytes | None, **options) -> Trickler:
        server = Trickler(answer, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def orphans(broker, store, settings):
    """Five ACTIVE signals the broker holds nothing for: five alerts from one run."""
    settings.RECONCILE_MAX_CONFIRMATIONS = 0
    symbols = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN"]
    store.put_documents([(f"s-{s.lower()}", active(s, "1")) for s in symbols])
    return symbols


pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.parametrize("store", ["local"], indirect=True),
]


def test_a_trickling_webhook_is_cut_off_at_the_deadline_after_the_lock_is_released(
    orphans, gateway, store, receiver, secrets, settings
):
    settings.ALERT_TIMEOUT_S = 1.0
    trickler = receiver(HTTP_ANSWER)
    settings.ALERT_WEBHOOK_URL = f"http://127.0.0.1:{trickler.port}/services/T/B/hook"

    finished = run(gateway, store)

    assert finished.status == "succeeded"
    assert trickler.connections == 1  # the others wait for a later pass (below)
    assert trickler.lock_free == [True]  # delivered after the run let its lock go
    wait_for(lambda: trickler.cut_off, what="the client hanging up mid-answer")
    assert trickler.cut_off[0] < len(HTTP_ANSWER)
    tried = Alert.objects.get(webhook_attempts=1)
    assert tried.webhook_status == Delivery.PENDING
    assert tried.last_error == "webhook: attempt 1: no complete answer within 1 s"


def test_five_silent_webhooks_cost_one_deadline_and_the_rest_wait_for_the_sweep(
    orphans, gateway, store, receiver, secrets, settings
):
    settings.ALERT_TIMEOUT_S = 1.0
    silent = receiver(None)
    settings.ALERT_WEBHOOK_URL = f"http://127.0.0.1:{silent.port}/services/T/B/hook"

    run(gateway, store)

    assert silent.connections == 1
    alerts = Alert.objects.order_by("pk")
    assert len(alerts) == 5
    assert sorted(a.webhook_attempts for a in alerts) == [0, 0, 0, 0, 1]
    assert {a.webhook_status for a in alerts} == {Delivery.PENDING}  # the sweep's to send


def test_a_trickling_mail_server_is_cut_off_at_the_deadline(
    orphans, gateway, store, receiver, secrets, settings
):
    trickler = receiver(SMTP_GREETING, greets=True)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", trickler.port
    settings.ALERT_TIMEOUT_S = settings.EMAIL_TIMEOUT = 1.0
    settings.ALERT_EMAILS = ["ops@example.com"]

    run(gateway, store)

    assert trickler.connections == 1 and trickler.lock_free == [True]
    wait_for(lambda: trickler.cut_off, what="the client hanging up mid-greeting")
    tried = Alert.objects.get(email_attempts=1)
    assert tried.email_status == Delivery.PENDING
    assert tried.last_error == "email: attempt 1: no complete answer within 1 s"


def test_a_mail_server_that_answers_gets_every_alert_after_the_lock_is_released(
    orphans, gateway, store, smtp, secrets, settings
):
    free: list[bool] = []
    handle = smtp.handle_DATA

    async def noting_the_lock(server, session, envelope):
        with single_flight(LOCK) as acquired:
            free.append(acquired)
        return await handle(server, session, envelope)

    smtp.handle_DATA = noting_the_lock

    run(gateway, store)

    assert len(smtp.messages) == 5 and free == [True] * 5
    assert {a.email_status for a in Alert.objects.all()} == {Delivery.SENT}
