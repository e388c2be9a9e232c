"""The broker error taxonomy, and the one place where alpaca-py and ``requests`` failures map to it.

Every failure the gateway raises is a :class:`BrokerError`. Nothing above the gateway ever sees a
``requests`` exception or alpaca-py's ``APIError``. Each class says what the caller must do.

``outcome_unknown`` is on every error: ``True`` means the request may have been applied at the
broker even though no usable answer came back (a POST or DELETE that timed out, was reset, got a
5xx or an unreadable 2xx after it was sent). For an order submission the caller must then look the
order up by ``client_order_id`` before doing anything else; it must never resend blindly.

Messages never contain credentials: they are built from the method, the path, the HTTP status and
the broker's own message, and any configured secret that still turns up is masked. Every message is
one short line (an operator reads it on stderr): whitespace is collapsed, an HTML error page is
reduced to its title, and the text is cut at :data:`MAX_ERROR_TEXT` characters.
"""

from __future__ import annotations

import email.utils
import html
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from brokerops.text import db_text

# requests and alpaca-py load with the gateway, not with this module (the apps import the error
# classes; tests/ops/test_startup.py): the mapping below imports them when it first runs.
if TYPE_CHECKING:
    import requests

#: Longest ``str()`` of any :class:`BrokerError`.
MAX_ERROR_TEXT = 400
#: Longest pause a 429 can impose (``ALPACA_MAX_PAUSE_S``): Alpaca's window is one minute.
DEFAULT_MAX_PAUSE_S = 65.0
#: The extra fields of Alpaca's 403 refusals, carried in :attr:`BrokerRejected.details`.
REFUSAL_DETAIL_FIELDS = (
    "buying_power",
    "cost_basis",
    "available",
    "existing_qty",
    "held_for_orders",
    "symbol",
)
_MAX_MESSAGE = 300
_MAX_EXCERPT = 120  # of a body that is not JSON (an HTML page)
_MAX_DETAIL = 64
_HTML_SCAN = 8192  # only the head of a body is searched for a title
_HTML_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_HTML_HIDDEN = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]*>")
_REDACTED = "[redacted]"
_DUPLICATE_COID_MARKER = "client_order_id must be unique"
# Methods whose effect cannot have happened twice or at all from the caller's point of view.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def one_line(text: object, limit: int = MAX_ERROR_TEXT) -> str:
    """``text`` as one line of at most ``limit`` characters (whitespace runs become one space),
    safe for any column (:func:`~brokerops.text.db_text`: a broker's NUL never reaches one)."""
    flat = " ".join(db_text(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 3].rstrip() + "..."
    return flat


class BrokerError(Exception):
    """Base of every broker failure. Catch this to mean "the broker did not give an answer".

    ``str(error)`` is one short line, fit for an operator's terminal (no HTML, no traceback)."""

    outcome_unknown: bool = False

    def __init__(self, message: str, *, outcome_unknown: bool = False) -> None:
        message = one_line(message)
        super().__init__(message)
        self.message = message
        self.outcome_unknown = outcome_unknown

    def operator_line(self) -> str:
        """What failed and what to do, for an operator's terminal (:mod:`brokerops.commands`)."""
        from .operator import broker_operator_line

        return broker_operator_line(self)


class BrokerNotFound(BrokerError):
    """404 with Alpaca's own JSON error (``{"code": 40410000, ...}``, see
    :func:`is_alpaca_not_found`): the entity does not exist at the broker (no position, no order
    with that id). Any other 404 (an HTML or empty page from a proxy or load balancer, or a
    proxy's JSON ``{"code": 404, ...}``) is :class:`BrokerUnavailable`, never this.

    Caller: treat as an answer ("none"), but confirm terminal decisions with a targeted look-up.
    """


class BrokerRateLimited(BrokerError):
    """429 (or the shared limiter could not grant a slot in time): nothing was applied.

    Caller: wait ``retry_after_s`` seconds (when known) and try again later; never hammer.
    ``retry_after_s`` never exceeds the pause cap (``ALPACA_MAX_PAUSE_S``), whatever the broker's
    ``Retry-After`` or ``X-RateLimit-Reset`` said.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message, outcome_unknown=False)
        self.retry_after_s = retry_after_s


class BrokerRejected(BrokerError):
    """A 4xx other than 404/429: the broker refused the request (validation, refusal, auth).

    Caller: do not retry the same request; record ``status``, ``code`` and ``message``. Then:

    - :attr:`is_auth_error` (401, bad keys): stop; nothing else will work until the keys are fixed.
    - :attr:`is_business_refusal` (403: insufficient buying power or quantity, "potential wash
      trade"): refuse this one request with Alpaca's message (the signal is ``REJECTED``) and go on
      with the others. Alpaca's figures (``buying_power``, ``cost_basis``, ``available``,
      ``existing_qty``, ``held_for_orders``, ``symbol``) are in :attr:`details`, as strings.
    - :attr:`is_duplicate_client_order_id` (422 ``client_order_id must be unique``): an earlier
      send of this order landed: look it up by client_order_id and adopt it.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | None,
        broker_message: str,
        details: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, outcome_unknown=False)
        self.status = status
        self.code = code
        self.broker_message = broker_message
        self.details: dict[str, str] = dict(details or {})

    @property
    def is_duplicate_client_order_id(self) -> bool:
        return self.status == 422 and _DUPLICATE_COID_MARKER in self.broker_message.lower()

    @property
    def is_auth_error(self) -> bool:
        """401: the keys are wrong or revoked (stop everything). A 403 is not this."""
        return self.status == 401

    @property
    def is_business_refusal(self) -> bool:
        """403: Alpaca refused this request for a business reason (stop only this one)."""
        return self.status == 403


class BrokerUnavailable(BrokerError):
    """5xx, timeouts, connection errors and resets: the broker could not be reached or failed.

    Caller: a read may be retried later. When ``outcome_unknown`` is true (a POST/DELETE that
    failed after it was sent) the request may have been applied: resolve it by looking it up
    (orders: by client_order_id), never by resending. ``status`` is the HTTP status or ``None``.
    A 404 lands here when its body is not Alpaca's JSON error (a proxy's or load balancer's page):
    that is no answer about the entity. A connection failure names the broker's ``host:port``.
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


@dataclass(frozen=True)
class RateLimitWait:
    """How long a 429 asks everyone to wait, after the cap.

    ``seconds``: the wait to honour (``None`` when no header gave a usable one); ``header``: the
    header it came from; ``requested_s``: what that header asked for before the cap."""

    seconds: float | None
    header: str | None = None
    requested_s: float | None = None

    @property
    def clamped(self) -> bool:
        return (
            self.seconds is not None
            and self.requested_s is not None
            and self.requested_s > self.seconds
        )

    def describe(self) -> str:
        """``"X-RateLimit-Reset asked 86400s, clamped to 65s"`` (for logs and messages)."""
        return f"{self.header} asked {self.requested_s:.0f}s, clamped to {self.seconds:g}s"


def _raw_wait(
    headers: Mapping[str, str] | None, now: Callable[[], float]
) -> tuple[str, float] | None:
    if not headers:
        return None
    value = headers.get("Retry-After")
    if value:
        seconds: float | None
        try:
            seconds = float(value)
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError, OverflowError):
                parsed = None
            seconds = parsed.timestamp() - now() if parsed is not None else None
        if seconds is not None and not math.isnan(seconds):
            return "Retry-After", max(0.0, seconds)
    value = headers.get("X-RateLimit-Reset")
    if value:
        try:
            seconds = float(value) - now()
        except ValueError:
            return None
        if not math.isnan(seconds):
            return "X-RateLimit-Reset", max(0.0, seconds)
    return None


def rate_limit_wait(
    headers: Mapping[str, str] | None,
    *,
    now: Callable[[], float] = time.time,
    max_pause_s: float = DEFAULT_MAX_PAUSE_S,
) -> RateLimitWait:
    """The wait a 429 asks for, from ``Retry-After`` (seconds or HTTP date) or else
    ``X-RateLimit-Reset`` (Unix epoch seconds: what Alpaca sends, with no ``Retry-After``), never
    more than ``max_pause_s``: a ``Retry-After: 86400`` must not silence every worker for a day."""
    found = _raw_wait(headers, now)
    if found is None:
        return RateLimitWait(None)
    header, requested = found
    return RateLimitWait(min(requested, max_pause_s), header, requested)


def parse_retry_after(
    headers: Mapping[str, str] | None,
    *,
    now: Callable[[], float] = time.time,
    max_s: float | None = None,
) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date) or ``X-RateLimit-Reset``
    (Unix epoch seconds, as Alpaca sends it); ``None`` when neither is present or usable. Capped
    at ``max_s`` when given (see :func:`rate_limit_wait`, which also says which header spoke)."""
    found = _raw_wait(headers, now)
    if found is None:
        return None
    return found[1] if max_s is None else min(found[1], max_s)


def is_alpaca_not_found(code: object) -> bool:
    """True for Alpaca's own "not found" code: an integer of 8 digits starting with 404
    (``40410000``). Alpaca's error codes are the HTTP status followed by five digits
    (``40010001``, ``40310000``, ``42210000``); a proxy's or gateway's JSON 404 says
    ``{"code": 404}`` or some other number, which says nothing about the entity."""
    return isinstance(code, int) and not isinstance(code, bool) and 40400000 <= code <= 40499999


@dataclass(frozen=True)
class _ErrorBody:
    code: int | None
    message: str
    is_alpaca: bool  # a JSON object with an integer "code": Alpaca's own error
    details: dict[str, str]


def _excerpt(text: str) -> str:
    """A short, single-line excerpt of a body that is not JSON (an HTML page: its title)."""
    head = text[:_HTML_SCAN]
    if "<" in head and ">" in head:
        title = _HTML_TITLE.search(head)
        if title and title.group(1).strip():
            head = title.group(1)
        else:
            head = _HTML_TAG.sub(" ", _HTML_HIDDEN.sub(" ", head))
        head = html.unescape(head)
    return one_line(head, _MAX_EXCERPT)


def _detail_value(value: object, secrets: Iterable[str]) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return one_line(_scrub(str(value), secrets), _MAX_DETAIL)


def _error_body(text: str, secrets: Iterable[str] = ()) -> _ErrorBody:
    """Code, message and refusal details of an error body; tolerant of HTML, empty and code-less
    bodies (never raises)."""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        message = _excerpt(_scrub(text, secrets)) if text and body is None else ""
        return _ErrorBody(None, message, False, {})
    raw_code = body.get("code")
    code: int | None = None
    is_alpaca = isinstance(raw_code, int) and not isinstance(raw_code, bool)
    if is_alpaca:
        code = raw_code
    elif isinstance(raw_code, str) and raw_code.isdigit():
        code = int(raw_code)
    raw_message = body.get("message")
    message = ""
    if raw_message is not None:
        message = one_line(_scrub(str(raw_message), secrets), _MAX_MESSAGE)
    details = {}
    for name in REFUSAL_DETAIL_FIELDS:
        value = _detail_value(body.get(name), secrets)
        if value is not None:
            details[name] = value
    return _ErrorBody(code, message, is_alpaca, details)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


def _may_have_applied(method: str) -> bool:
    return method.upper() not in _SAFE_METHODS


def _request_never_sent(exc: requests.RequestException) -> bool:
    """True only when we are sure no byte of the request reached the broker."""
    import requests

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        return any(
            marker in text
            for marker in ("NewConnectionError", "Connection refused", "NameResolutionError")
        )
    return isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema)


def _endpoint(exc: requests.RequestException) -> str | None:
    """``host:port`` the failed request was going to (never the path, query or credentials)."""
    url = getattr(getattr(exc, "request", None), "url", None)
    if not url:
        return None
    try:
        parts = urlsplit(str(url))
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def map_http_error(
    *,
    method: str,
    path: str,
    status: int,
    body_text: str,
    headers: Mapping[str, str] | None,
    now: Callable[[], float] = time.time,
    secrets: Iterable[str] = (),
    max_pause_s: float = DEFAULT_MAX_PAUSE_S,
) -> BrokerError:
    """Map an HTTP error status to the taxonomy."""
    body = _error_body(body_text or "", secrets)
    where = f"{method.upper()} {path}"
    detail = f"{where} -> HTTP {status}" + (f" ({body.code})" if body.code is not None else "")
    if status == 404 and not (body.is_alpaca and is_alpaca_not_found(body.code)):
        # A proxy's or load balancer's page or JSON: no answer about the entity at all.
        detail += ": not Alpaca's JSON error (a proxy or load balancer?)"
        if body.message:
            detail += f": {body.message}"
        return BrokerUnavailable(detail, status=status, outcome_unknown=_may_have_applied(method))
    if body.message:
        detail += f": {body.message}"
    if status == 404:
        return BrokerNotFound(detail)
    if status == 429:
        wait = rate_limit_wait(headers, now=now, max_pause_s=max_pause_s)
        if wait.clamped:
            detail += f" ({wait.describe()})"
        return BrokerRateLimited(detail, retry_after_s=wait.seconds)
    if status == 408 or status >= 500:
        return BrokerUnavailable(detail, status=status, outcome_unknown=_may_have_applied(method))
    if body.details:
        detail += " (" + ", ".join(f"{k}={v}" for k, v in body.details.items()) + ")"
    return BrokerRejected(
        detail,
        status=status,
        code=body.code,
        broker_message=body.message,
        details=body.details,
    )


def map_exception(
    exc: BaseException,
    *,
    method: str,
    path: str,
    now: Callable[[], float] = time.time,
    secrets: Iterable[str] = (),
    max_pause_s: float = DEFAULT_MAX_PAUSE_S,
) -> BrokerError:
    """The one place that turns anything alpaca-py, ``requests`` or the parser raised into a
    :class:`BrokerError`. Never reads ``APIError.code``/``.message`` (they raise on HTML or
    code-less bodies)."""
    if isinstance(exc, BrokerError):
        return exc
    import requests
    from alpaca.common.exceptions import APIError

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
            max_pause_s=max_pause_s,
        )
    # Before RequestException: requests' JSONDecodeError is one (and a ValueError too).
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        # A 2xx whose body is not JSON: the broker may well have applied a POST.
        return BrokerMalformedResponse(
            f"{where}: response body is not JSON", outcome_unknown=_may_have_applied(method)
        )
    if isinstance(exc, requests.RequestException):
        return BrokerUnavailable(
            f"{where}: {_transport_failure(exc)}",
            outcome_unknown=_may_have_applied(method) and not _request_never_sent(exc),
        )
    if isinstance(exc, ValueError | KeyError | TypeError | RecursionError):
        # The parser, alpaca-py or the JSON decoder (a 5,000-digit number, nesting 100,000 deep)
        # could not make sense of a 2xx body.
        text = one_line(_scrub(str(exc), secrets), _MAX_MESSAGE)
        return BrokerMalformedResponse(
            f"{where}: malformed response: {text}", outcome_unknown=_may_have_applied(method)
        )
    raise TypeError(f"not a broker failure: {type(exc).__name__}") from exc


def _transport_failure(exc: requests.RequestException) -> str:
    """What went wrong on the way, in words, with the ``host:port`` it was going to: a timeout
    (on connecting or later), a refused connection or one lost midway, or the exception's
    class."""
    import requests

    if isinstance(exc, requests.exceptions.Timeout):
        reason = (
            "connect timeout" if isinstance(exc, requests.exceptions.ConnectTimeout) else "timeout"
        )
    elif isinstance(exc, requests.exceptions.ConnectionError):
        reason = "connection refused" if _request_never_sent(exc) else "connection error/reset"
    else:
        reason = type(exc).__name__
    endpoint = _endpoint(exc)
    if endpoint:
        reason += f" ({endpoint})"
    return reason
