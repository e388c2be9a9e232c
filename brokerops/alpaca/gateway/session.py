"""The gateway's HTTP plumbing: the session every attempt goes through (timeout, rate limit,
counting, the 429 pause, bodies read in 1 MB reads), the call counter, and the one place a
failure is mapped into the broker error taxonomy (:class:`GatewayCalls`)."""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from requests.utils import get_environ_proxies

from brokerops import metrics

from ..errors import DEFAULT_MAX_PAUSE_S, BrokerError, map_exception, rate_limit_wait
from ..limiter import RateLimiter
from ..parsing.values import ParseError
from ..retry import RetryPolicy

logger = logging.getLogger(__name__)
T = TypeVar("T")

# A 429 without Retry-After / X-RateLimit-Reset still pauses everyone this long.
DEFAULT_429_PAUSE_S = 1.0
#: Largest single read of a response body (see :func:`read_body`).
BODY_READ_SIZE = 1 << 20
# What the gateway catches around alpaca-py (with raw_data=True it raises nothing else on a
# response); anything else is a bug and propagates unchanged. A plain ValueError or RecursionError
# is the JSON decoder choking on a hostile body (a 5,000-digit number, nesting 100,000 deep).
MAPPED = (APIError, requests.RequestException, ParseError, ValueError, RecursionError)


@dataclass(eq=False)  # identity, not value: nested scopes must not be confused
class CallCount:
    """HTTP attempts seen while a :meth:`AlpacaGateway.count_calls` block was open."""

    total: int = 0
    by_method: Counter = field(default_factory=Counter)
    thread_ids: set[int] | None = None  # None: every thread

    def include_current_thread(self) -> None:
        """Count this thread's calls too (a worker thread doing part of the scope's work)."""
        if self.thread_ids is not None:
            self.thread_ids.add(threading.get_ident())


class CallCounter:
    """The gateway's count of HTTP attempts, and the :class:`CallCount` scopes open on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self._open: list[CallCount] = []
        self._on_behalf: dict[int, int] = {}  # a helper thread -> the thread it works for

    def record(self, method: str) -> None:
        me = threading.get_ident()
        with self._lock:
            self.total += 1
            threads = {me}
            while me in self._on_behalf and len(threads) < 8:  # a helper of a helper
                me = self._on_behalf[me]
                threads.add(me)
            for count in self._open:
                if count.thread_ids is None or not threads.isdisjoint(count.thread_ids):
                    count.total += 1
                    count.by_method[method] += 1

    @contextmanager
    def on_behalf_of(self, thread_id: int) -> Iterator[None]:
        """While open, this thread's calls count in every scope that counts ``thread_id``'s,
        those opened before as well as after (a thread reading ahead for another)."""
        me = threading.get_ident()
        with self._lock:
            self._on_behalf[me] = thread_id
        try:
            yield
        finally:
            with self._lock:
                self._on_behalf.pop(me, None)

    @contextmanager
    def scope(self, current_thread_only: bool) -> Iterator[CallCount]:
        count = CallCount(thread_ids={threading.get_ident()} if current_thread_only else None)
        with self._lock:
            self._open.append(count)
        try:
            yield count
        finally:
            with self._lock:
                self._open.remove(count)


class GatewaySession(requests.Session):
    """The session alpaca-py (and the market-data reads) send through: timeout, rate limit,
    counting, 429 pause (capped at ``max_pause_s``)."""

    def __init__(
        self,
        *,
        timeout_s: float,
        limiter: RateLimiter,
        counter: CallCounter,
        wall_clock: Callable[[], float],
        max_pause_s: float = DEFAULT_MAX_PAUSE_S,
    ) -> None:
        super().__init__()
        self._timeout_s = timeout_s
        self._limiter = limiter
        self._counter = counter
        self._wall_clock = wall_clock
        self._max_pause_s = max_pause_s
        # requests reads the proxy and CA-bundle variables (parsing NO_PROXY) and looks for a
        # ~/.netrc on every call: about 0.4 ms of the GIL a call, 0.4 s of a first read of
        # 100,000 activities (docs/benchmarks.md). The environment is read once per host here
        # instead (merge_environment_settings); no .netrc is read: Alpaca takes its key headers.
        self.trust_env = False
        self._environment: dict[tuple[str, str], tuple[dict[str, str], str | None]] = {}
        self._environment_lock = threading.Lock()

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[override]
        """requests' own merge with ``trust_env`` on, the environment's part read once per
        scheme and host: ``HTTP(S)_PROXY`` / ``ALL_PROXY`` unless ``NO_PROXY`` names the host,
        then ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        with self._environment_lock:
            found = self._environment.get(key)
            if found is None:
                bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                found = self._environment[key] = (get_environ_proxies(url), bundle)
        environ_proxies, bundle = found
        proxies = dict(proxies or {})
        for scheme, proxy in environ_proxies.items():
            proxies.setdefault(scheme, proxy)
        if verify is True or verify is None:
            verify = bundle or verify
        return super().merge_environment_settings(url, proxies, stream, verify, cert)

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout_s
        # Alpaca does not redirect; following one would send the key headers wherever it points.
        kwargs["allow_redirects"] = False
        stream = kwargs.pop("stream", None)
        self._limiter.acquire()
        self._counter.record(str(method).upper())
        try:
            response = super().request(method, url, *args, stream=True, **kwargs)
        except requests.RequestException:
            metrics.alpaca_request_record(method=method, url=url, status=None)
            raise
        metrics.alpaca_request_record(method=method, url=url, status=response.status_code)
        if not stream:
            read_body(response)
        if response.status_code == 429:
            wait = rate_limit_wait(
                response.headers, now=self._wall_clock, max_pause_s=self._max_pause_s
            )
            pause = wait.seconds if wait.seconds is not None else DEFAULT_429_PAUSE_S
            if wait.clamped:
                logger.warning(
                    "broker rate limit hit (429); %s (ALPACA_MAX_PAUSE_S); "
                    "pausing all workers for %.2fs",
                    wait.describe(),
                    pause,
                )
            else:
                logger.warning("broker rate limit hit (429); pausing all workers for %.2fs", pause)
            self._limiter.pause(pause)
        return response


def read_body(response: requests.Response) -> None:
    """Read the body as ``Response.content`` would for a request that is not streamed, but in
    reads of up to :data:`BODY_READ_SIZE` instead of requests' 10 KB.

    Each read gives the GIL away while it waits on the socket; getting it back can take a whole
    switch interval (5 ms) when another thread is busy parsing, so a 40 MB positions list read
    10 KB at a time spends seconds waiting for the GIL. Errors are requests' own
    (``iter_content`` maps urllib3's), raised where a non-streamed request raises them.
    """
    if response._content is False and response.status_code != 0 and response.raw is not None:
        response._content = b"".join(response.iter_content(BODY_READ_SIZE)) or b""
    response.content  # noqa: B018 - marks the body consumed, exactly as requests does


class GatewayCalls:
    """What every part of :class:`~brokerops.alpaca.gateway.AlpacaGateway` calls through: one
    attempt with its failure mapped (:meth:`_once`), or an idempotent read retried under the
    gateway's :class:`RetryPolicy` (:meth:`_read`). The attributes are set by the gateway."""

    retry_policy: RetryPolicy
    max_pause_s: float
    _client: TradingClient
    _secrets: tuple[str, str]
    _wall_clock: Callable[[], float]

    def _once(self, method: str, path: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except BrokerError:
            raise
        except MAPPED as exc:
            # `from None`: the chained alpaca-py/requests frames hold the auth headers.
            raise map_exception(
                exc,
                method=method,
                path=path,
                now=self._wall_clock,
                secrets=self._secrets,
                max_pause_s=self.max_pause_s,
            ) from None

    def _read(self, path: str, fn: Callable[[], T]) -> T:
        return self.retry_policy.call(lambda: self._once("GET", path, fn), what=f"GET {path}")
