"""The broker error taxonomy, and the one place where alpaca-py and ``requests`` failures map to it.

Every failure the gateway raises is a :class:`BrokerError`. Nothing above the gateway ever sees a
``requests`` exception or alpaca-py's ``APIError``. Each class says what the caller must do.

``outcome_unknown`` is on every error: ``True`` means the request may have been applied at the
broker even though no usable answer came back (a POST or DELETE that timed out, was reset, got a
5xx or an unreadable 2xx after it was sent). For an order submission the caller must then look the
order up by ``client_order_id`` before doing anything else; it must never resend blindly.

Messages never contain credentials: they are built from the method, the path, the HTTP status and
the broker's own message, and any configured secret that still turns up is masked.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Iterable, Mapping

import requests
from alpaca.common.exceptions import APIError

_MAX_MESSAGE = 300
_REDACTED = "[redacted]"
_DUPLICATE_COID_MARKER = "client_order_id must be unique"
# Methods whose effect cannot have happened twice or at all from the caller's point of view.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BrokerError(Exception):
    """Base of every broker failure. Catch this to mean "the broker did not give an answer"."""

    outcome_unknown: bool = False

    def __init__(self, message: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.outcome_unknown = outcome_unknown


class BrokerNotFound(BrokerError):
    """404: the entity does not exist at the broker (no position, no order with that id).

    Caller: treat as an answer ("none"), but confirm terminal decisions with a targeted look-up.
    """


class BrokerRateLimited(BrokerError):
    """429 (or the shared limiter could not grant a slot in time): nothing was applied.

    Caller: wait ``retry_after_s`` seconds (when known) and try again later; never hammer.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message, outcome_unknown=False)
        self.retry_after_s = retry_after_s


class BrokerRejected(BrokerError):
    """A 4xx other than 404/429: the broker refused the request (validation, permissions, auth).

    Caller: do not retry the same request; record ``status``, ``code`` and ``message``. A 422
    ``client_order_id must be unique`` (:attr:`is_duplicate_client_order_id`) means an earlier send
    of this order landed: look it up by client_order_id and adopt it.
    """

    def __init__(self, message: str, *, status: int, code: int | None, broker_message: str) -> None:
        super().__init__(message, outcome_unknown=False)
        self.status = status
        self.code = code
        self.broker_message = broker_message

    @property
    def is_duplicate_client_order_id(self) -> bool:
        return self.status == 422 and _DUPLICATE_COID_MARKER in self.broker_message.lower()

    @property
    def is_auth_error(self) -> bool:
        return self.status in (401, 403)


class BrokerUnavailable(BrokerError):
    """5xx, timeouts, connection errors and resets: the broker could not be reached or failed.

    Caller: a read may be retried later. When ``outcome_unknown`` is true (a POST/DELETE that
    failed after it was sent) the request may have been applied: resolve it by looking it up
    (orders: by client_order_id), never by resending. ``status`` is the HTTP status or ``None``.
    """

    def __init__(
        self, message: str, *, status: int | None = None, outcome_unknown: bool = False
    ) -> None:
        super().__init__(message, outcome_unknown=outcome_unknown)
        self.status = status


class BrokerMalformedResponse(BrokerError):
    """The broker answered but the body does not parse or validate (or a paged read cannot be
    completed without skipping data). Caller: treat the read as failed, never as "empty"; alert.
    For a POST the request may have been applied (``outcome_unknown``)."""


# --- mapping ---------------------------------------------------------------------------------


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date) or ``X-RateLimit-Reset``
    (Unix epoch seconds, as Alpaca sends it); ``None`` when neither is present or usable."""
    if not headers:
        return None
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                parsed = None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - now())
    value = headers.get("X-RateLimit-Reset")
    if value:
        try:
            return max(0.0, float(value) - now())
        except ValueError:
            return None
    return None


def _body_fields(text: str) -> tuple[int | None, str]:
    """(code, message) from an error body, tolerant of HTML, empty and code-less bodies."""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    code: int | None = None
    message = ""
    if isinstance(body, dict):
        raw_code = body.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        elif isinstance(raw_code, str) and raw_code.isdigit():
            code = int(raw_code)
        raw_message = body.get("message")
        if raw_message is not None:
            message = str(raw_message)
    elif text:
        # Not JSON (an HTML 502 page): keep a short, single-line excerpt.
        message = " ".join(text.split())
    return code, message[:_MAX_MESSAGE]


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


def _may_have_applied(method: str) -> bool:
    return method.upper() not in _SAFE_METHODS


def _request_never_sent(exc: requests.RequestException) -> bool:
    """True only when we are sure no byte of the request reached the broker."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        return any(
            marker in text
            for marker in ("NewConnectionError", "Connection refused", "NameResolutionError")
        )
    return isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema)


def map_http_error(
    *,
    method: str,
    path: str,
    status: int,
    body_text: str,
    headers: Mapping[str, str] | None,
    now: Callable[[], float] = time.time,
    secrets: Iterable[str] = (),
) -> BrokerError:
    """Map an HTTP error status to the taxonomy."""
    code, broker_message = _body_fields(body_text or "")
    broker_message = _scrub(broker_message, secrets)
    where = f"{method.upper()} {path}"
    detail = f"{where} -> HTTP {status}" + (f" ({code})" if code is not None else "")
    if broker_message:
        detail += f": {broker_message}"
    if status == 404:
        return BrokerNotFound(detail)
    if status == 429:
        return BrokerRateLimited(detail, retry_after_s=parse_retry_after(headers, now=now))
    if status == 408 or status >= 500:
        return BrokerUnavailable(detail, status=status, outcome_unknown=_may_have_applied(method))
    return BrokerRejected(detail, status=status, code=code, broker_message=broker_message)


def map_exception(
    exc: BaseException,
    *,
    method: str,
    path: str,
    now: Callable[[], float] = time.time,
    secrets: Iterable[str] = (),
) -> BrokerError:
    """The one place that turns anything alpaca-py, ``requests`` or the parser raised into a
    :class:`BrokerError`. Never reads ``APIError.code``/``.message`` (they raise on HTML or
    code-less bodies)."""
    if isinstance(exc, BrokerError):
        return exc
    where = f"{method.upper()} {path}"
    if isinstance(exc, APIError):
        response = exc.response
        if response is None:
            return BrokerUnavailable(
                f"{where}: broker error without a response",
                outcome_unknown=_may_have_applied(method),
            )
        return map_http_error(
            method=method,
            path=path,
            status=response.status_code,
            body_text=response.text,
            headers=response.headers,
            now=now,
            secrets=secrets,
        )
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        # A 2xx whose body is not JSON: the broker may well have applied a POST.
        return BrokerMalformedResponse(
            f"{where}: response body is not JSON", outcome_unknown=_may_have_applied(method)
        )
    if isinstance(exc, requests.exceptions.Timeout):
        kind = (
            "connect timeout" if isinstance(exc, requests.exceptions.ConnectTimeout) else "timeout"
        )
        return BrokerUnavailable(
            f"{where}: {kind}",
            outcome_unknown=_may_have_applied(method) and not _request_never_sent(exc),
        )
    if isinstance(exc, requests.RequestException):
        reason = type(exc).__name__
        if isinstance(exc, requests.exceptions.ConnectionError):
            reason = "connection refused" if _request_never_sent(exc) else "connection error/reset"
        return BrokerUnavailable(
            f"{where}: {reason}",
            outcome_unknown=_may_have_applied(method) and not _request_never_sent(exc),
        )
    if isinstance(exc, ValueError | KeyError | TypeError):
        # The parser (or alpaca-py) could not make sense of a 2xx body.
        text = _scrub(str(exc), secrets)[:_MAX_MESSAGE]
        return BrokerMalformedResponse(
            f"{where}: malformed response: {text}", outcome_unknown=_may_have_applied(method)
        )
    raise TypeError(f"not a broker failure: {type(exc).__name__}") from exc
