"""The two channels an alert goes out on, each attempt bounded by one wall-clock deadline.

A receiver that answers one byte every two seconds never trips a per-read timeout (each read gets
its byte in time), so a timeout per read bounds nothing. A :class:`Deadline` bounds the whole
attempt (``ALERT_TIMEOUT_S``: connect, send, every read of the answer): when it passes, a timer
shuts the attempt's sockets down, the blocked read returns, and the attempt fails with "no
complete answer within N s" (docs/design.md, section 13). A host name's DNS look-up and a TLS
handshake are bounded by the per-operation timeout only.

:func:`email_send` uses Django's mail backend (``EMAIL_URL``); with the SMTP backend its
connections are watched by the deadline. :func:`webhook_post` is a JSON POST through requests
(proxies from the environment as usual), its connections watched the same way.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import threading
import time
from functools import cache
from types import TracebackType
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend

from .models import Alert

SUBJECT_PREFIX = "[brokerops] "
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
_current = threading.local()  # the deadline of the attempt this thread is making


class AlertDeliveryError(Exception):
    """A channel did not take the message: the attempt counts, a later one may succeed."""


class Deadline:
    """One wall-clock deadline for an attempt; connections made inside ``with`` are watched
    (their ``sock``, whatever it is at the time: after STARTTLS, the TLS socket) and shut down
    when it passes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._ends_at = time.monotonic() + seconds
        self._holders: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        return max(self._ends_at - time.monotonic(), 0.001)

    def watch(self, holder: Any) -> None:
        """Shut ``holder.sock`` down when the deadline passes (at once if it has)."""
        with self._lock:
            self._holders.append(holder)
            expired = self.expired
        if expired:
            _shut_down(holder)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            holders = list(self._holders)
        for holder in holders:
            _shut_down(holder)

    def __enter__(self) -> Deadline:
        _current.deadline = self
        self._timer.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.cancel()
        _current.deadline = None

    def error(self) -> AlertDeliveryError:
        return AlertDeliveryError(f"no complete answer within {self.seconds:g} s")


def _shut_down(holder: Any) -> None:
    sock = getattr(holder, "sock", None)
    if sock is None:
        return
    # Wakes a read blocked in the attempt's thread; a socket already closed (or one a TLS
    # wrapper took over: watched as the holder's new ``sock``) has nothing to wake.
    with contextlib.suppress(OSError, ValueError):
        sock.shutdown(socket.SHUT_RDWR)


def _watch(holder: Any) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(holder)


# --- Webhook ------------------------------------------------------------------------------------


@cache
def _watched_adapter() -> type:
    """requests' adapter whose connections (direct or through an HTTP proxy) the current
    :class:`Deadline` watches (built when first used: requests is not loaded at start-up)."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class WatchedHTTPConnection(HTTPConnection):
        def connect(self) -> None:
            _watch(self)
            super().connect()

    class WatchedHTTPSConnection(HTTPSConnection):
        def connect(self) -> None:
            _watch(self)
            super().connect()

    class WatchedHTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    pools = {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}

    class WatchedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            if not proxy.lower().startswith("socks"):  # SOCKS pools are the proxy's own kind
                manager.pool_classes_by_scheme = pools
            return manager

    return WatchedAdapter


def webhook_post(url: str, payload: dict, *, deadline_s: float) -> None:
    """POST ``payload`` as JSON to ``url``; non-2xx, no answer or one too slow is an
    :class:`AlertDeliveryError` (whose text never names the URL: it may hold a secret)."""
    import requests

    adapter = _watched_adapter()
    with requests.Session() as session:
        session.mount("http://", adapter())
        session.mount("https://", adapter())
        with Deadline(deadline_s) as deadline:
            try:
                response = session.post(
                    url, json=payload, timeout=deadline.remaining(), allow_redirects=False
                )
            except requests.RequestException as exc:  # its text names the URL: the class only
                if deadline.expired:
                    raise deadline.error() from exc
                raise AlertDeliveryError(type(exc).__name__) from exc
            except Exception as exc:  # a socket shut down under a TLS read may raise otherwise
                if deadline.expired:
                    raise deadline.error() from exc
                raise
    if not 200 <= response.status_code < 300:
        raise AlertDeliveryError(f"HTTP {response.status_code}")


# --- Email --------------------------------------------------------------------------------------


class _WatchedSMTP(smtplib.SMTP):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)  # before connecting: the greeting may be the slow part
        super().__init__(*args, **kwargs)


class _WatchedSMTPSSL(smtplib.SMTP_SSL):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().__init__(*args, **kwargs)


class _WatchedSMTPBackend(SMTPBackend):
    @property
    def connection_class(self) -> type[smtplib.SMTP]:
        return _WatchedSMTPSSL if self.use_ssl else _WatchedSMTP


def email_send(message: EmailMessage, *, deadline_s: float) -> None:
    """Send ``message`` through the configured mail backend within ``deadline_s``."""
    with Deadline(deadline_s) as deadline:
        if settings.EMAIL_BACKEND == SMTP_BACKEND:
            message.connection = _WatchedSMTPBackend(
                fail_silently=False, timeout=min(deadline_s, settings.EMAIL_TIMEOUT or deadline_s)
            )
        else:
            message.connection = get_connection(fail_silently=False)
        try:
            message.send(fail_silently=False)
        except (smtplib.SMTPException, OSError) as exc:
            if deadline.expired:
                raise deadline.error() from exc
            raise AlertDeliveryError(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # a socket shut down under a TLS read may raise otherwise
            if deadline.expired:
                raise deadline.error() from exc
            raise


# --- The alert's message on each channel ----------------------------------------------------


def alert_email_send(alert: Alert) -> None:
    """The alert's message to ``ALERT_EMAILS``."""
    message = EmailMessage(
        subject=SUBJECT_PREFIX + alert.subject,
        body=f"{alert.body}\n\n{_footer(alert)}",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(settings.ALERT_EMAILS),
        headers={"X-Brokerops-Alert": alert.kind},
    )
    email_send(message, deadline_s=settings.ALERT_TIMEOUT_S)


def alert_webhook_post(alert: Alert) -> None:
    """A JSON POST a Slack incoming webhook accepts (``text``), with the fields under
    ``brokerops`` for other receivers. Non-2xx is a failure; the error never names the URL."""
    payload = {
        "text": f"*{SUBJECT_PREFIX}{alert.subject}*\n{alert.body}",
        "brokerops": {
            "alert_id": alert.pk,
            "kind": alert.kind,
            "key": alert.key,
            "subject": alert.subject,
            "body": alert.body,
            "first_seen_at": alert.first_seen_at.isoformat(),
            "last_seen_at": alert.last_seen_at.isoformat(),
            "times_seen": alert.times_seen,
            "notification": alert.notifications,
        },
    }
    webhook_post(settings.ALERT_WEBHOOK_URL, payload, deadline_s=settings.ALERT_TIMEOUT_S)


SENDERS = {"email": alert_email_send, "webhook": alert_webhook_post}


def _footer(alert: Alert) -> str:
    return (
        f"Alert #{alert.pk} ({alert.kind}), first seen {alert.first_seen_at:%Y-%m-%d %H:%M:%S} "
        f"UTC, seen {alert.times_seen} time(s). brokerops sends it once per event; see the "
        "admin's Alerts page."
    )
