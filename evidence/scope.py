"""What an evidence pack covers (docs/design.md section 19): one client order id, one break, or
the days from one date to another (one account, or every account the asker may see), and the rows
of each table that belong to it.

A scope is checked before anything is written: an order id or a break that does not exist (or
belongs to an account the asker may not see: one answer for both) and a range longer than
:data:`MAX_RANGE_DAYS` are refused with a message naming why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Model, QuerySet

from orders.models import OrderAttempt, OrderEvent, OrderExecution
from reconciliation.models import Break, BreakEvent, Mismatch, RunEvent

#: The longest date range one pack covers: a month of a busy desk (300,000 attempts) is about
#: 15 minutes of building; longer questions are answered month by month.
MAX_RANGE_DAYS = 31


class EvidenceError(Exception):
    """The pack cannot be built as asked; nothing was written."""


class NotFound(EvidenceError):
    """The object the pack is about does not exist (or is not the asker's to see)."""


@dataclass(frozen=True)
class Scope:
    order: str = ""
    break_id: int | None = None
    start: date | None = None
    end: date | None = None  # inclusive
    account: str = ""
    visible: frozenset[str] | None = None  # the accounts the asker may see (None: every one)

    def describe(self) -> str:
        if self.break_id is not None:
            return f"break #{self.break_id}"
        if self.order:
            return f"client order id {self.order}"
        accounts = f"account {self.account}" if self.account else "every account"
        return f"{self.start.isoformat()} to {self.end.isoformat()} (UTC days), {accounts}"

    def as_dict(self) -> dict:
        return {
            "order": self.order or None,
            "break": self.break_id,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "account": self.account or None,
            "accounts_visible": None if self.visible is None else sorted(self.visible),
        }

    def slug(self) -> str:
        if self.break_id is not None:
            return f"break-{self.break_id}"
        if self.order:
            return "".join(c if c.isalnum() or c in "-_" else "_" for c in self.order)[:80]
        return f"{self.start:%Y%m%d}-{self.end:%Y%m%d}" + (
            f"-{self.account}" if self.account else ""
        )

    @property
    def window(self) -> tuple[datetime, datetime]:
        start = datetime.combine(self.start, time.min, tzinfo=UTC)
        return start, datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)


def scope_check(scope: Scope) -> Scope:
    """``scope`` when a pack can be built for it; :class:`EvidenceError` naming why not."""
    asked = [bool(scope.order), scope.break_id is not None, scope.start or scope.end]
    if sum(map(bool, asked)) != 1:
        raise EvidenceError(
            "give one of a client order id, a break, or a date range (--from and --to)"
        )
    if scope.break_id is not None:
        if not _accounts(Break.objects.filter(pk=scope.break_id), scope).exists():
            raise NotFound(f"no break #{scope.break_id}")
        return scope
    if scope.order:
        if not _accounts(OrderAttempt.objects.filter(client_order_id=scope.order), scope).exists():
            raise NotFound(f"no order attempt has client order id {scope.order!r}")
        return scope
    if scope.start is None or scope.end is None:
        raise EvidenceError("a date range needs both --from and --to")
    if scope.end < scope.start:
        raise EvidenceError(f"the range ends ({scope.end}) before it starts ({scope.start})")
    days = (scope.end - scope.start).days + 1
    if days > MAX_RANGE_DAYS:
        raise EvidenceError(
            f"the range covers {days} days; one pack covers at most {MAX_RANGE_DAYS} days:"
            " ask for it month by month"
        )
    if scope.account and scope.visible is not None and scope.account not in scope.visible:
        raise NotFound(f"no account {scope.account!r} to show")
    return scope


def _accounts(queryset: QuerySet, scope: Scope, path: str = "account") -> QuerySet:
    if scope.account:
        queryset = queryset.filter(**{path: scope.account})
    if scope.visible is not None:
        queryset = queryset.filter(**{f"{path}__in": sorted(scope.visible)})
    return queryset


@dataclass(frozen=True)
class Table:
    """One CSV of the pack: its file, its model, its chain (None: not chained), its rows, and the
    columns of a table that is not chained (a chained one has its chain's fields)."""

    name: str
    model: type[Model]
    chain: str | None
    rows: Callable[[Scope], QuerySet]
    columns: tuple[str, ...] = ()


def _order_of(scope: Scope) -> str:
    """The client order id the pack is about: asked for, or the break's (``""``: none)."""
    if scope.break_id is not None:
        return Break.objects.filter(pk=scope.break_id).values_list("client_order_id", flat=True)[0]
    return scope.order


def _attempts(scope: Scope) -> QuerySet:
    if scope.break_id is not None:
        order = _order_of(scope)
        return OrderAttempt.objects.filter(client_order_id=order) if order else _none(OrderAttempt)
    if scope.order:
        return _accounts(OrderAttempt.objects.filter(client_order_id=scope.order), scope)
    lo, hi = scope.window
    return _accounts(OrderAttempt.objects.filter(created_at__gte=lo, created_at__lt=hi), scope)


def _of_attempts(model: type[Model], stamp: str) -> Callable[[Scope], QuerySet]:
    def rows(scope: Scope) -> QuerySet:
        order = _order_of(scope)
        if scope.break_id is not None and not order:
            return _none(model)
        if order:
            queryset = model.objects.filter(attempt__client_order_id=order)
        else:
            lo, hi = scope.window
            queryset = model.objects.filter(**{f"{stamp}__gte": lo, f"{stamp}__lt": hi})
        return _accounts(queryset, scope, "attempt__account")

    return rows


def _none(model: type[Model]) -> QuerySet:
    return model.objects.none()


def _mismatches(scope: Scope) -> QuerySet:
    if scope.break_id is not None:  # every run's occurrence of the break
        return Mismatch.objects.filter(break_case_id=scope.break_id)
    if scope.order:
        return _accounts(Mismatch.objects.filter(client_order_id=scope.order), scope)
    lo, hi = scope.window
    return _accounts(Mismatch.objects.filter(created_at__gte=lo, created_at__lt=hi), scope)


def _run_events(scope: Scope) -> QuerySet:
    if scope.break_id is not None:  # what the runs did about its occurrences
        return RunEvent.objects.filter(mismatch__break_case_id=scope.break_id)
    if scope.order:  # what the runs did about the order's mismatches
        queryset = RunEvent.objects.filter(mismatch__client_order_id=scope.order)
    else:
        lo, hi = scope.window
        queryset = RunEvent.objects.filter(created_at__gte=lo, created_at__lt=hi)
    return _accounts(queryset, scope, "run__account")


def _breaks(scope: Scope) -> QuerySet:
    if scope.break_id is not None:
        return Break.objects.filter(pk=scope.break_id)
    if scope.order:
        return _accounts(Break.objects.filter(client_order_id=scope.order), scope)
    lo, hi = scope.window  # the breaks something happened to in the range
    touched = BreakEvent.objects.filter(created_at__gte=lo, created_at__lt=hi)
    return _accounts(Break.objects.filter(pk__in=touched.values("break_case_id")), scope)


def _break_events(scope: Scope) -> QuerySet:
    if scope.break_id is not None:
        return BreakEvent.objects.filter(break_case_id=scope.break_id)
    if scope.order:
        queryset = BreakEvent.objects.filter(break_case__client_order_id=scope.order)
    else:
        lo, hi = scope.window
        queryset = BreakEvent.objects.filter(created_at__gte=lo, created_at__lt=hi)
    return _accounts(queryset, scope, "break_case__account")


#: The attempt's columns (the attempt is not chained: its events are its history).
ATTEMPT_COLUMNS = (
    "id",
    "account",
    "client_order_id",
    "signal_id",
    "leg",
    "alpaca_order_id",
    "symbol",
    "side",
    "order_type",
    "time_in_force",
    "qty",
    "notional",
    "limit_price",
    "stop_price",
    "status",
    "broker_status",
    "filled_qty",
    "filled_avg_price",
    "reason",
    "adopted",
    "created_at",
    "submitted_at",
    "updated_at",
)
#: The break's columns (a projection: its events are its record).
BREAK_COLUMNS = (
    "id",
    "account",
    "key",
    "kind",
    "severity",
    "symbol",
    "signal_ids",
    "client_order_id",
    "state",
    "disposition",
    "reason",
    "owner_username",
    "proposed_by_username",
    "approved_by_username",
    "first_seen_at",
    "last_seen_at",
    "opened_at",
    "due_at",
    "closed_at",
    "occurrences",
    "first_run_id",
    "last_run_id",
    "cleared_by_run_id",
    "needs_review",
)

TABLES = (
    Table("attempts.csv", OrderAttempt, None, _attempts, ATTEMPT_COLUMNS),
    Table("order_events.csv", OrderEvent, "order_events", _of_attempts(OrderEvent, "created_at")),
    Table(
        "order_executions.csv",
        OrderExecution,
        "order_executions",
        _of_attempts(OrderExecution, "received_at"),
    ),
    Table("mismatches.csv", Mismatch, "mismatches", _mismatches),
    Table("run_events.csv", RunEvent, "run_events", _run_events),
    Table("breaks.csv", Break, None, _breaks, BREAK_COLUMNS),
    Table("break_events.csv", BreakEvent, "break_events", _break_events),
)
