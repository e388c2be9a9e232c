"""Prometheus metrics (docs/design.md section 13): the metric objects, one recording function per
event, and what ``/metrics`` serves.

The names are an operator interface (dashboards in ``ops/grafana``, alert rules in
``ops/prometheus`` depend on them)::

    brokerops_reconciliation_runs_total{status}        succeeded | failed | skipped
    brokerops_mismatches_total{kind}                   Mismatch.Kind
    brokerops_signals_closed_total                     ORPHAN_POSITION -> CLOSED_MANUAL
    brokerops_alpaca_requests_total{endpoint,status}   "GET /v2/orders/{id}"; "200" or "error"
    brokerops_alpaca_rate_limited_total                429 answers
    brokerops_rate_limiter_wait_seconds                histogram: wait per token taken
    brokerops_orders_submitted_total{outcome}          orders.services.outcomes.Outcome
    brokerops_last_successful_reconciliation_timestamp_seconds   from the database
    brokerops_audit_chain_ok                           from the database (latest verify_audit)

Counters and the histogram are recorded where the event happens (the services call the
``*_record`` functions below, one line each). The two gauges are read from the database when
``/metrics`` is scraped (:class:`DatabaseGauges`): the last successful run and the latest
``AuditVerification`` are facts of the database, whichever process made them, so a restarted or
recycled process can never report a stale or missing value. Before the first successful run
(or the first verification) the gauge has no sample.

Multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, read from the environment before the first
metric is made, so it must be in the process's environment or ``.env``): every process (gunicorn
workers, Celery prefork children, the stream consumer, the watcher, one-off commands) writes its
counts to its own files in that directory, and ``/metrics`` adds them up
(``MultiProcessCollector``). Files are named by host and pid (``counter_<host>-<pid>.db``), so
containers sharing one volume never write to each other's files although their pids repeat.
Counts of processes that ended stay in the sum (counters never go back); the directory must be
emptied when the whole stack starts (docker-compose mounts a tmpfs volume, emptied when its last
container stops). Without the variable each process keeps its own registry (development, tests)
and ``/metrics`` shows the serving process's counts.

This module imports no Django at load time (the gunicorn config imports it in the master).
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

if TYPE_CHECKING:
    from typing import Protocol

    class FinishedRun(Protocol):
        """What a run's count needs of it (``reconciliation.models.ReconciliationRun``)."""

        status: str
        summary: Mapping[str, Any] | None


logger = logging.getLogger(__name__)
T = TypeVar("T")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

# The label values known in advance, created at 0 in every process so that an alert on
# ``increase(...)`` sees the first event (a series that appears at 1 has no increase). The
# lists are the models' enums (a test checks that they agree); these names are labels only.
RUN_STATUSES = ("succeeded", "failed", "skipped")
MISMATCH_KINDS = (
    "ORPHAN_POSITION",
    "UNTRACKED_POSITION",
    "QTY_MISMATCH",
    "SIDE_MISMATCH",
    "ORDER_NOT_FOUND",
    "ORDER_STATUS_DRIFT",
    "UNKNOWN_ORDER",
    "INVALID_SIGNAL",
    "SIGNAL_ACCOUNT_MOVED",
)
ORDER_OUTCOMES = (
    "submitted",
    "adopted",
    "rejected",
    "unknown",
    "deferred",
    "withdrawn",
    "busy",
    "already",
    "failed",
    "conflict",
)
#: The reconciliation action that closes a signal (``Mismatch.Action.SIGNAL_CLOSED_MANUAL``).
SIGNAL_CLOSED_ACTION = "signal_closed_manual"

# --- process identity and mode ----------------------------------------------------------------

_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def process_identifier(pid: int | None = None) -> str:
    """The name of a process's files in the multiprocess directory: host and pid (``_`` is
    the file name's separator, so the host keeps none)."""
    return f"{_HOST}-{os.getpid() if pid is None else pid}"


def multiprocess_dir() -> str | None:
    """The shared directory of multiprocess mode, or ``None`` (single-process mode)."""
    return os.environ.get(MULTIPROC_ENV) or None


_MULTIPROC_DIR = multiprocess_dir()
if _MULTIPROC_DIR:
    os.makedirs(_MULTIPROC_DIR, exist_ok=True)
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)
else:
    # Set but empty must not mean "files in the current directory" (prometheus_client's test is
    # only whether the variable exists).
    values.ValueClass = values.MutexValue
# ``*_created`` samples exist in single-process mode only: leave them out, so both modes serve
# the same series.
prometheus_client.disable_created_metrics()

# --- the metrics ---------------------------------------------------------------------------

#: The registry of this process's metrics (served as such in single-process mode only).
REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILIATION_RUNS = Counter(
    "brokerops_reconciliation_runs",
    "Reconciliation runs finished, by status (an abandoned run counts as failed).",
    ["status"],
    registry=REGISTRY,
)
MISMATCHES = Counter(
    "brokerops_mismatches",
    "Mismatches recorded by reconciliation runs, by kind.",
    ["kind"],
    registry=REGISTRY,
)
SIGNALS_CLOSED = Counter(
    "brokerops_signals_closed",
    "Signals reconciliation moved to CLOSED_MANUAL (orphan positions).",
    registry=REGISTRY,
)
ALPACA_REQUESTS = Counter(
    "brokerops_alpaca_requests",
    "HTTP requests sent to Alpaca, by endpoint (method and path template) and HTTP status "
    "('error': no answer).",
    ["endpoint", "status"],
    registry=REGISTRY,
)
ALPACA_RATE_LIMITED = Counter(
    "brokerops_alpaca_rate_limited",
    "429 (rate limited) answers from Alpaca.",
    registry=REGISTRY,
)
RATE_LIMITER_WAIT = Histogram(
    "brokerops_rate_limiter_wait_seconds",
    "Time a request waited for the shared rate limiter's token (0 when one was free).",
    buckets=(0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
ORDERS_SUBMITTED = Counter(
    "brokerops_orders_submitted",
    "Signals handled by the order service (cycle, watcher), by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
#: The gauges :class:`DatabaseGauges` serves.
LAST_SUCCESS_GAUGE = "brokerops_last_successful_reconciliation_timestamp_seconds"
AUDIT_CHAIN_OK_GAUGE = "brokerops_audit_chain_ok"

for _status in RUN_STATUSES:
    RECONCILIATION_RUNS.labels(status=_status)
for _kind in MISMATCH_KINDS:
    MISMATCHES.labels(kind=_kind)
for _outcome in ORDER_OUTCOMES:
    ORDERS_SUBMITTED.labels(outcome=_outcome)

# --- recording (one call per event, from the services) ------------------------------------

# Alpaca's paths as templates (Alpaca's own names for the parts, as the paper broker counts
# them): ids and symbols never become label values. Matched at the end of the path, so a base URL
# with a path prefix (a proxy) is fine.
_ENDPOINTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern + r"$"), template)
    for pattern, template in (
        (r"/v2/orders/[^/]+", "/v2/orders/{id}"),
        (r"/v2/orders:by_client_order_id", "/v2/orders:by_client_order_id"),
        (r"/v2/orders", "/v2/orders"),
        (r"/v2/positions/[^/]+", "/v2/positions/{symbol_or_asset_id}"),
        (r"/v2/positions", "/v2/positions"),
        (r"/v2/assets/[^/]+(?:/[^/]+)?", "/v2/assets/{symbol_or_id}"),
        (r"/v2/assets", "/v2/assets"),
        (r"/v2/account", "/v2/account"),
        (r"/v2/clock", "/v2/clock"),
        (r"/v2/stocks/trades/latest", "/v2/stocks/trades/latest"),
        (r"/v1beta3/crypto/[^/]+/latest/trades", "/v1beta3/crypto/{loc}/latest/trades"),
    )
)
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def alpaca_endpoint(method: str, url: str) -> str:
    """``"GET /v2/orders/{id}"`` for ``GET https://host/v2/orders/<uuid>?x=1``: the method and
    the path's template (``other`` for a path brokerops does not call), a bounded set."""
    method = str(method).upper()
    path = urlsplit(str(url)).path.rstrip("/")
    template = next((t for pattern, t in _ENDPOINTS if pattern.search(path)), "other")
    return f"{method if method in _METHODS else 'OTHER'} {template}"


def alpaca_request_record(*, method: str, url: str, status: int | None) -> None:
    """One HTTP attempt to Alpaca; ``status=None`` when no answer came (timeout, reset)."""
    ALPACA_REQUESTS.labels(
        endpoint=alpaca_endpoint(method, url), status="error" if status is None else str(status)
    ).inc()
    if status == 429:
        ALPACA_RATE_LIMITED.inc()


def rate_limiter_wait_record(*, seconds: float) -> None:
    """The time one request waited for its token (0 included)."""
    RATE_LIMITER_WAIT.observe(max(0.0, seconds))


def reconciliation_run_record(*, run: FinishedRun) -> None:
    """A finished run (any status): its status, its mismatches by kind, the signals it closed
    (from ``run.summary``'s ``by_kind`` and ``by_action``, as the run recorded them)."""
    RECONCILIATION_RUNS.labels(status=str(run.status)).inc()
    summary: Mapping[str, Any] = run.summary or {}
    for kind, count in (summary.get("by_kind") or {}).items():
        if count:
            MISMATCHES.labels(kind=str(kind)).inc(count)
    closed = (summary.get("by_action") or {}).get(SIGNAL_CLOSED_ACTION, 0)
    if closed:
        SIGNALS_CLOSED.inc(closed)


def reconciliation_runs_abandoned_record(*, count: int) -> None:
    """Runs found abandoned (their worker died): counted as failed, as their rows say."""
    if count:
        RECONCILIATION_RUNS.labels(status="failed").inc(count)


def order_outcome_record(outcome: T) -> T:
    """One signal through the order service; returns ``outcome`` (a ``SignalOutcome``) so the
    service can ``return order_outcome_record(...)``."""
    ORDERS_SUBMITTED.labels(outcome=str(outcome.outcome)).inc()  # type: ignore[attr-defined]
    return outcome


# --- process life ----------------------------------------------------------------------------


def process_dead(pid: int) -> None:
    """Drop a process's live-gauge files (gunicorn ``child_exit``, Celery
    ``worker_process_shutdown``); its counts stay in the sum. No-op in single-process mode."""
    path = multiprocess_dir()
    if path:
        mark_process_dead(process_identifier(pid), path)


# --- scraping ----------------------------------------------------------------------------------


class DatabaseGauges:
    """The two gauges that are facts of the database, read at scrape time (module doc)."""

    def describe(self) -> list[Metric]:
        return []  # nothing read at registration

    def collect(self) -> Iterator[Metric]:
        from django.db import DatabaseError

        from brokerops import readings

        last = GaugeMetricFamily(
            LAST_SUCCESS_GAUGE,
            "Unix time the latest successful (non-dry) reconciliation run finished.",
        )
        chain = GaugeMetricFamily(
            AUDIT_CHAIN_OK_GAUGE,
            "1 when the latest verify_audit found the audit chains intact, 0 when broken.",
        )
        try:
            finished_at = readings.last_successful_run_finished_at()
            intact = readings.audit_chain_intact()
        except DatabaseError as exc:
            # The counters are still served; the gauges are absent (an alert on absent() sees it).
            logger.warning("/metrics: database gauges unreadable: %s", type(exc).__name__)
        else:
            if finished_at is not None:
                last.add_metric([], finished_at.timestamp())
            if intact is not None:
                chain.add_metric([], 1.0 if intact else 0.0)
        yield last
        yield chain


def metrics_render() -> bytes:
    """The text exposition ``/metrics`` serves: every process's counts (multiprocess mode) or
    this process's, plus the database gauges."""
    from django.conf import settings

    registry = CollectorRegistry()
    path = settings.PROMETHEUS_MULTIPROC_DIR
    if path:
        MultiProcessCollector(registry, path=path)
    else:
        registry.register(_Local())
    registry.register(DatabaseGauges())
    return generate_latest(registry)


class _Local:
    """This process's registry, as a collector of the scrape's registry."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()
