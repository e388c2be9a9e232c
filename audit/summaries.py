"""Cross-check the rows that summarise events against their events (docs/design.md section 12).

An order attempt and a reconciliation run are not chained: they change as their work goes on.
Every change of what they record comes with a chained event in the same transaction, so the
events say what the row must hold, and an edited row is named:

- an attempt's ``status`` is the ``status_to`` of its newest state event (created, validation
  failed, status changed, adopted: the kinds written in the transaction that changed it), and
  its ``filled_qty`` the ``filled_qty`` of the newest such event that carries Alpaca's order
  (its payload);
- a run's ``status`` is the ``status`` of its newest event that has one, and its counters
  (positions, orders, signals seen, mismatches found, repairs applied, API calls) those of its
  newest ``finished`` event.

A row without such events (written before they existed, or by a test's factory) is not judged.
Each check is one statement, so a writer committing meanwhile never makes a false alarm.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from django.apps import apps
from django.db import models
from django.db.models import OuterRef, Subquery
from django.db.models.fields.json import KT

from .verify import ChainReport, Problem

ATTEMPTS = "order_attempts"
RUNS = "reconciliation_runs"
#: Event kinds written in the same transaction as the attempt's change they record.
ATTEMPT_STATE_KINDS = ("created", "validation_failed", "status_changed", "adopted")
RUN_COUNTERS = (
    "positions_seen",
    "orders_seen",
    "signals_seen",
    "mismatches_found",
    "repairs_applied",
    "api_calls",
)
_CHUNK = 5000


def check_summaries() -> dict[str, ChainReport]:
    """One report per summarising table, its problems naming the row and what disagrees."""
    return {ATTEMPTS: _check_attempts(), RUNS: _check_runs()}


def _check_attempts() -> ChainReport:
    Attempt = apps.get_model("orders", "OrderAttempt")
    Event = apps.get_model("orders", "OrderEvent")
    report = ChainReport(ATTEMPTS)
    states = Event._default_manager.filter(
        attempt=OuterRef("pk"), kind__in=ATTEMPT_STATE_KINDS
    ).order_by("-pk")
    rows = (
        Attempt._default_manager.annotate(
            said_status=Subquery(states.exclude(status_to="").values("status_to")[:1]),
            said_filled=Subquery(
                states.filter(payload__has_key="filled_qty")
                .annotate(filled=KT("payload__filled_qty"))
                .values("filled")[:1]
            ),
            said_filled_known=models.Exists(states.filter(payload__has_key="filled_qty")),
        )
        .exclude(said_status=None)
        .order_by("pk")
        .values_list(
            "pk", "status", "filled_qty", "said_status", "said_filled", "said_filled_known"
        )
    )
    for pk, status, filled, said_status, said_filled, filled_known in _iterate(rows):
        report.rows += 1
        if status != said_status:
            report.problems.append(
                Problem(ATTEMPTS, pk, f"status {status}, its events say {said_status}: edited")
            )
        if filled_known and not _same_qty(filled, said_filled):
            report.problems.append(
                Problem(
                    ATTEMPTS,
                    pk,
                    f"filled_qty {_text(filled)}, its events say {_text(said_filled)}: edited",
                )
            )
    return report


def _check_runs() -> ChainReport:
    Run = apps.get_model("reconciliation", "ReconciliationRun")
    Event = apps.get_model("reconciliation", "RunEvent")
    report = ChainReport(RUNS)
    events = Event._default_manager.filter(run=OuterRef("pk")).order_by("-pk")
    rows = (
        Run._default_manager.annotate(
            said_status=Subquery(events.exclude(status="").values("status")[:1]),
            finished=Subquery(
                events.filter(kind="finished").values("payload")[:1],
                output_field=models.JSONField(),
            ),
        )
        .exclude(said_status=None)
        .order_by("pk")
        .values_list("pk", "status", "said_status", "finished", *RUN_COUNTERS)
    )
    for pk, status, said_status, finished, *counters in _iterate(rows):
        report.rows += 1
        if status != said_status:
            report.problems.append(
                Problem(RUNS, pk, f"status {status}, its events say {said_status}: edited")
            )
        if not isinstance(finished, dict):
            continue
        for name, value in zip(RUN_COUNTERS, counters, strict=True):
            said = finished.get(name)
            if isinstance(said, int) and said != value:
                report.problems.append(
                    Problem(RUNS, pk, f"{name} {value}, its events say {said}: edited")
                )
    return report


def _iterate(rows: models.QuerySet) -> Iterator[Any]:
    return rows.iterator(chunk_size=_CHUNK)


def _same_qty(stored: Decimal | None, said: Any) -> bool:
    """The column against the broker's figure the event kept (text, as Alpaca sent it)."""
    if said is None or said == "":
        return stored is None or stored == 0
    try:
        figure = Decimal(str(said))
    except InvalidOperation:
        return False
    if stored is None:
        return figure == 0
    # The column keeps 9 decimals (SQLite: 15 significant digits): compare at what it holds.
    return abs(figure - stored) <= max(Decimal("1e-9"), abs(figure) * Decimal("1e-14"))


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return "none" if value is None else str(value)
