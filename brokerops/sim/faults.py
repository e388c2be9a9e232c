"""Fault injection: seeded random faults per request, and faults forced on the next N requests.

A fault either replaces the request's effect (``*_before`` kinds: the book is not touched) or
follows it (``*_after`` kinds: the book *is* changed, e.g. the order is placed, and then the client
gets a reset, a 5xx or an HTML page; that is how a client learns an outcome is unknown).

Kinds (:class:`FaultKind`):

===================  =================================================================
``stall``            sleep ``stall_s``, then apply the request and answer normally
``stall_after``      apply the request, sleep ``stall_s``, then answer
``reset_before``     close the connection with a TCP RST; nothing applied
``reset_after``      apply the request, then close with a TCP RST (no response)
``5xx``              answer a JSON 5xx (one of ``status_5xx``); nothing applied
``5xx_after``        apply the request, then answer a JSON 5xx (504 by default when forced)
``non_json``         answer an HTML 502 page (as a proxy would); nothing applied
``non_json_after``   apply the request, then answer the HTML 502 page
``429``              answer 429, the wait ``retry_after_s`` in ``Retry-After`` or, without
                     ``retry_after_header``, in ``X-RateLimit-Reset``; nothing applied
``proxy_json``       answer a proxy's JSON error ``{"code": 404, "message": "Not Found"}``
                     (404 by default), not Alpaca's; nothing applied. Forced only
                     (:meth:`FaultInjector.inject_next`): it never takes part in the draw
===================  =================================================================

A stall ends early when the broker stops; the request is then dropped without being applied
(``stall``) or answered (``stall_after``), so ``stop()`` never waits for it.

Reproducibility: with a :class:`FaultConfig`, every request that matches its ``methods``/``routes``
filter draws one number from ``random.Random(seed)`` (and a second to pick the status when the
fault is a 5xx); the fault rates slice [0, 1) in the order of the table above. The n-th matching
request therefore gets the same fault in every run with the same seed, whatever the timing. Forced
faults (:meth:`FaultInjector.inject_next`) come first and do not draw.

The trade_updates stream has faults of its own (:class:`StreamFaultKind`, decided per event and
connection by :class:`StreamFaultInjector`; see the end of this module).
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar


class FaultKind(StrEnum):
    STALL = "stall"
    STALL_AFTER = "stall_after"
    RESET_BEFORE = "reset_before"
    RESET_AFTER = "reset_after"
    ERROR_5XX = "5xx"
    ERROR_5XX_AFTER = "5xx_after"
    NON_JSON = "non_json"
    NON_JSON_AFTER = "non_json_after"
    RATE_429 = "429"
    PROXY_JSON = "proxy_json"


AFTER_KINDS = frozenset(
    {
        FaultKind.STALL_AFTER,
        FaultKind.RESET_AFTER,
        FaultKind.ERROR_5XX_AFTER,
        FaultKind.NON_JSON_AFTER,
    }
)


_Kind = TypeVar("_Kind")


def _check_rates(rates: list[float], what: str) -> None:
    """Each rate a probability, and all of them together at most 1 (they slice one draw)."""
    if any(rate < 0 or rate > 1 for rate in rates):
        raise ValueError(f"{what} rates must be between 0 and 1")
    if sum(rates) > 1 + 1e-9:
        raise ValueError(f"{what} rates must add up to at most 1")


def _drawn_kind(point: float, rates: list[tuple[_Kind, float]]) -> _Kind | None:
    """The kind whose slice of [0, 1) holds ``point`` (the rates slice it in their order)."""
    edge = 0.0
    for kind, rate in rates:
        edge += rate
        if point < edge:
            return kind
    return None


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Random faults with a seed. Rates are probabilities per matching request; their sum <= 1.

    ``methods`` (e.g. ``("POST",)``) and ``routes`` (e.g. ``("POST /v2/orders",)`` or a bare
    template ``"/v2/orders/{id}"``) restrict which requests are eligible; None means all.
    ``latency_s`` (plus up to ``latency_jitter_s``, seeded) delays every eligible request.
    """

    seed: int = 0
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    stall_rate: float = 0.0
    stall_after_rate: float = 0.0
    stall_s: float = 30.0
    reset_before_rate: float = 0.0
    reset_after_rate: float = 0.0
    error_5xx_rate: float = 0.0
    error_5xx_after_rate: float = 0.0
    status_5xx: tuple[int, ...] = (500, 502, 503, 504)
    non_json_rate: float = 0.0
    non_json_after_rate: float = 0.0
    rate_429: float = 0.0
    retry_after_s: int = 1
    methods: tuple[str, ...] | None = None
    routes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_rates([rate for _, rate in self.rates()], "fault")
        if not self.status_5xx or any(not 500 <= s <= 599 for s in self.status_5xx):
            raise ValueError("status_5xx must hold 5xx status codes")

    def rates(self) -> list[tuple[FaultKind, float]]:
        """The kinds and their rates, in the order they slice the random draw."""
        return [
            (FaultKind.STALL, self.stall_rate),
            (FaultKind.STALL_AFTER, self.stall_after_rate),
            (FaultKind.RESET_BEFORE, self.reset_before_rate),
            (FaultKind.RESET_AFTER, self.reset_after_rate),
            (FaultKind.ERROR_5XX, self.error_5xx_rate),
            (FaultKind.ERROR_5XX_AFTER, self.error_5xx_after_rate),
            (FaultKind.NON_JSON, self.non_json_rate),
            (FaultKind.NON_JSON_AFTER, self.non_json_after_rate),
            (FaultKind.RATE_429, self.rate_429),
        ]

    def matches(self, method: str, template: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        if self.routes is None:
            return True
        return f"{method} {template}" in self.routes or template in self.routes


@dataclass(frozen=True, slots=True)
class FaultAction:
    """One fault to apply to one request."""

    kind: FaultKind
    status: int = 0
    retry_after_s: int = 1
    stall_s: float = 0.0

    @property
    def after(self) -> bool:
        """True when the request is applied before the fault shows."""
        return self.kind in AFTER_KINDS


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """A fault that was applied: ``draw`` is the matching request's index (None when forced)."""

    method: str
    route: str
    kind: FaultKind
    status: int = 0
    draw: int | None = None


#: The status a fault answers with when none is asked for (kinds not named: none, 0).
_DEFAULT_STATUS = {
    FaultKind.ERROR_5XX: 500,
    FaultKind.ERROR_5XX_AFTER: 504,
    FaultKind.NON_JSON: 502,
    FaultKind.NON_JSON_AFTER: 502,
    FaultKind.PROXY_JSON: 404,
}


def _fault_status(kind: FaultKind, status: int | None) -> int:
    """The status a fault of ``kind`` answers with: always 429 for a 429, else ``status``
    when given, else the kind's default."""
    if kind is FaultKind.RATE_429:
        return 429
    return status or _DEFAULT_STATUS.get(kind, 0)


class FaultInjector:
    """Decides the fault for each request; thread-safe."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._forced: dict[str, deque[FaultAction]] = {}
        self._events: list[FaultEvent] = []
        self.configure(config)

    def configure(self, config: FaultConfig | None) -> None:
        """Replace the random fault config (None turns random faults off) and restart its seed."""
        with self._lock:
            self._config = config
            seed = config.seed if config is not None else 0
            self._rng = random.Random(seed)  # noqa: S311 - reproducible faults, not security
            self._jitter = random.Random(seed + 1)  # noqa: S311
            self._draws = 0

    @property
    def config(self) -> FaultConfig | None:
        return self._config

    def inject_next(
        self,
        route: str,
        kind: FaultKind | str,
        count: int = 1,
        *,
        status: int | None = None,
        retry_after_s: int = 1,
        stall_s: float = 30.0,
    ) -> None:
        """Force ``kind`` on the next ``count`` requests of ``route`` (``"POST /v2/orders"``).

        ``route`` is ``"METHOD /template"`` as in ``PaperBroker.counters()``, or ``"*"`` for any
        request. ``status`` picks the 5xx code (default 500 before, 504 after), or the status of
        a ``non_json`` page (default 502; e.g. 404 for a proxy's HTML "not found").
        """
        kind = FaultKind(kind)
        action = FaultAction(kind, _fault_status(kind, status), retry_after_s, stall_s)
        with self._lock:
            self._forced.setdefault(route, deque()).extend([action] * count)

    def latency(self, method: str, template: str) -> float:
        """Seconds to delay this request (0 unless the config asks for latency)."""
        config = self._config
        if config is None or not (config.latency_s or config.latency_jitter_s):
            return 0.0
        if not config.matches(method, template):
            return 0.0
        with self._lock:
            jitter = self._jitter.random() * config.latency_jitter_s
        return config.latency_s + jitter

    def decide(self, method: str, template: str) -> FaultAction | None:
        """The fault for this request, if any; forced faults first, then the seeded draw."""
        with self._lock:
            for key in (f"{method} {template}", "*"):
                queue = self._forced.get(key)
                if queue:
                    action = queue.popleft()
                    self._events.append(FaultEvent(method, template, action.kind, action.status))
                    return action
            config = self._config
            if config is None or not config.matches(method, template):
                return None
            draw = self._draws
            self._draws += 1
            kind = _drawn_kind(self._rng.random(), config.rates())
            return None if kind is None else self._drawn(config, method, template, kind, draw)

    def _drawn(
        self, config: FaultConfig, method: str, template: str, kind: FaultKind, draw: int
    ) -> FaultAction:
        if kind in (FaultKind.ERROR_5XX, FaultKind.ERROR_5XX_AFTER):
            status = config.status_5xx[int(self._rng.random() * len(config.status_5xx))]
        else:
            status = _fault_status(kind, None)
        self._events.append(FaultEvent(method, template, kind, status, draw))
        return FaultAction(kind, status, config.retry_after_s, config.stall_s)

    def events(self) -> list[FaultEvent]:
        """Faults applied so far, in order."""
        with self._lock:
            return list(self._events)

    def pending(self) -> dict[str, int]:
        """Forced faults not yet used, per route."""
        with self._lock:
            return {route: len(queue) for route, queue in self._forced.items() if queue}

    def clear(self) -> None:
        """Drop forced faults and the event log (the random config stays)."""
        with self._lock:
            self._forced.clear()
            self._events.clear()


def chaos_faults(seed: int = 7) -> FaultConfig:
    """The mix the chaos test and benchmark run under: resets before and after the order is
    applied, 5xx before and after, HTML 502s after, stalls past a short client timeout, 429s."""
    return FaultConfig(
        seed=seed,
        reset_before_rate=0.05,
        reset_after_rate=0.05,
        error_5xx_rate=0.04,
        error_5xx_after_rate=0.04,
        non_json_after_rate=0.03,
        rate_429=0.04,
        stall_after_rate=0.02,
        stall_s=1.0,
        retry_after_s=0,
    )


# ---------------------------------------------------------------------- the trade_updates stream


class StreamFaultKind(StrEnum):
    """What can go wrong with one event on one stream connection.

    ``drop``: the connection is cut (no close frame, as a network failure looks) instead of
    sending the event, which that connection never sees; ``stall``: nothing more is sent on the
    connection for ``stall_s`` (the event and everything after it, pongs included, arrive late,
    in order); ``duplicate``: the event is sent twice.
    """

    DROP = "drop"
    STALL = "stall"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class StreamFaultConfig:
    """Seeded stream faults. Each event pushed to a listening connection draws one number from
    ``random.Random(seed)``; the rates slice [0, 1) in the order drop, stall, duplicate, so the
    n-th pushed event gets the same fault in every run with the same seed. ``drop_after_events``
    (independent of the draw) cuts each connection right after it was sent that many events.
    """

    seed: int = 0
    drop_rate: float = 0.0
    stall_rate: float = 0.0
    stall_s: float = 5.0
    duplicate_rate: float = 0.0
    drop_after_events: int | None = None

    def __post_init__(self) -> None:
        _check_rates([rate for _, rate in self.rates()], "stream fault")
        if self.stall_s < 0:
            raise ValueError("stall_s must be >= 0")
        if self.drop_after_events is not None and self.drop_after_events < 1:
            raise ValueError("drop_after_events must be at least 1 (None: off)")

    def rates(self) -> list[tuple[StreamFaultKind, float]]:
        return [
            (StreamFaultKind.DROP, self.drop_rate),
            (StreamFaultKind.STALL, self.stall_rate),
            (StreamFaultKind.DUPLICATE, self.duplicate_rate),
        ]


@dataclass(frozen=True, slots=True)
class StreamFaultAction:
    """One fault for one event on one connection (``stall_s`` for a stall)."""

    kind: StreamFaultKind
    stall_s: float = 0.0


@dataclass(frozen=True, slots=True)
class StreamFaultEvent:
    """A stream fault that was applied: ``event`` is the trade update's event name, ``draw``
    the index of the seeded draw (None when forced or from ``drop_after_events``)."""

    kind: StreamFaultKind
    event: str
    draw: int | None = None


class StreamFaultInjector:
    """Decides the fault of each event pushed to a connection; thread-safe."""

    def __init__(self, config: StreamFaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._forced: deque[StreamFaultAction] = deque()
        self._events: list[StreamFaultEvent] = []
        self.configure(config)

    def configure(self, config: StreamFaultConfig | None) -> None:
        """Replace the seeded config (None: off) and restart its sequence."""
        with self._lock:
            self._config = config
            self._rng = random.Random(config.seed if config else 0)  # noqa: S311 - reproducible
            self._draws = 0

    @property
    def config(self) -> StreamFaultConfig | None:
        return self._config

    def inject_next(
        self, kind: StreamFaultKind | str, count: int = 1, *, stall_s: float = 5.0
    ) -> None:
        """Force ``kind`` on the next ``count`` events pushed (to whichever connection)."""
        action = StreamFaultAction(StreamFaultKind(kind), stall_s)
        with self._lock:
            self._forced.extend([action] * count)

    def decide(self, event: str) -> StreamFaultAction | None:
        """The fault for one event about to be queued on one connection: forced faults first,
        then the seeded draw."""
        with self._lock:
            if self._forced:
                action = self._forced.popleft()
                self._events.append(StreamFaultEvent(action.kind, event))
                return action
            config = self._config
            if config is None:
                return None
            draw = self._draws
            self._draws += 1
            kind = _drawn_kind(self._rng.random(), config.rates())
            if kind is None:
                return None
            self._events.append(StreamFaultEvent(kind, event, draw))
            return StreamFaultAction(kind, config.stall_s)

    def drop_after(self, event: str, sent: int) -> bool:
        """True when a connection that has now been queued ``sent`` events is to be cut after
        them (``drop_after_events``); logged as a ``drop``."""
        config = self._config
        if config is None or config.drop_after_events is None or sent != config.drop_after_events:
            return False
        with self._lock:
            self._events.append(StreamFaultEvent(StreamFaultKind.DROP, event))
        return True

    def events(self) -> list[StreamFaultEvent]:
        with self._lock:
            return list(self._events)

    def clear(self) -> None:
        """Drop forced faults and the log (the seeded config stays)."""
        with self._lock:
            self._forced.clear()
            self._events.clear()
