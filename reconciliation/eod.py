"""The end-of-day report's data (docs/design.md section 17), built once and rendered twice: the
e-mail (:mod:`reconciliation.eod_mail`) and the admin page (``workspace.eod_report``).

One day in ``REPORT_TZ`` (midnight to midnight there): breaks opened (and reopened) and closed
(signed off, repaired, cleared by a run) that day by account and kind; the breaks still open at
the end of the day (or now, for today) by kind and by age bucket (:mod:`reconciliation.ageing`),
and the overdue ones; the repairs (breaks closed as repaired, mismatches whose repair
succeeded); the orders rejected before anything was sent, with their reasons; the last audit
verification. "Still open" is rebuilt from the breaks' events, so a past day's report says what
was open then, not now. Reads only.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from audit.models import AuditVerification
from orders.models import OrderAttempt

from .ageing import AGE_BUCKETS, LIVE_STATES, age, age_bucket, human_age
from .breaks import due_after
from .models import Break, BreakEvent, Mismatch

Ev = BreakEvent.Kind
#: Rows listed per section at most (the counts are whole).
LIST_MAX = 200
#: A mismatch whose repair succeeded ended with one of these.
REPAIRED_ACTIONS = (
    Mismatch.Action.SIGNAL_CLOSED_MANUAL,
    Mismatch.Action.ATTEMPT_MARKED_MISSING,
    Mismatch.Action.ATTEMPT_STATUS_UPDATED,
    Mismatch.Action.ORDER_ADOPTED,
)
CLOSING = Q(kind__in=(Ev.APPROVED, Ev.REPAIRED)) | Q(kind=Ev.CLEARED, state_to=Break.State.RESOLVED)


@dataclass
class BreakLine:
    """One break as the report lists it (``url``: set by the page, empty in the e-mail)."""

    id: int
    account: str
    kind: str
    symbol: str
    severity: str
    state: str
    owner: str
    opened_at: datetime
    due_at: datetime
    age: str
    url: str = ""


@dataclass
class EodReport:
    day: date
    tz: str
    start: datetime
    end: datetime
    as_of: datetime
    accounts: frozenset[str] | None  # None: every account
    by_kind: list[dict] = field(default_factory=list)  # account, kind, opened, closed, open
    by_age: list[dict] = field(default_factory=list)  # account, <bucket keys>, total
    overdue: list[BreakLine] = field(default_factory=list)
    overdue_total: int = 0
    repaired: list[BreakLine] = field(default_factory=list)
    repaired_total: int = 0
    repairs: list[dict] = field(default_factory=list)  # account, action, count
    rejected: list[OrderAttempt] = field(default_factory=list)
    rejected_total: int = 0
    verification: AuditVerification | None = None

    @property
    def totals(self) -> dict[str, int]:
        return {
            name: sum(row[name] for row in self.by_kind) for name in ("opened", "closed", "open")
        }

    @property
    def buckets(self) -> list[tuple[str, str]]:
        return [(b.key, b.label) for b in AGE_BUCKETS]


def report_day(now: datetime | None = None) -> date:
    """Today in ``REPORT_TZ``."""
    return (now or timezone.now()).astimezone(ZoneInfo(settings.REPORT_TZ)).date()


def eod_report(
    *, day: date, now: datetime | None = None, accounts: frozenset[str] | None = None
) -> EodReport:
    """The report of ``day`` (in ``REPORT_TZ``) as of ``now`` (the day's end when it is over),
    of ``accounts`` (None: every account)."""
    zone = ZoneInfo(settings.REPORT_TZ)
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    now = now or timezone.now()
    report = EodReport(day, settings.REPORT_TZ, start, end, min(now, end), accounts)
    _counts(report)
    _repairs(report)
    _rejected(report)
    report.verification = AuditVerification.objects.filter(started_at__lte=report.as_of).first()
    return report


def _mine(queryset, report: EodReport, path: str = "account"):
    return (
        queryset if report.accounts is None else queryset.filter(**{f"{path}__in": report.accounts})
    )


def _counts(report: EodReport) -> None:
    window = {"created_at__gte": report.start, "created_at__lt": report.as_of}
    events = _mine(BreakEvent.objects.filter(**window), report, "break_case__account").order_by()
    table: dict[tuple[str, str], Counter] = {}
    for name, q in (("opened", Q(kind__in=(Ev.OPENED, Ev.REOPENED))), ("closed", CLOSING)):
        rows = events.filter(q).values_list("break_case__account", "break_case__kind")
        for account, kind, n in rows.annotate(n=Count("id")):
            table.setdefault((account, kind), Counter())[name] += n
    ages: dict[str, Counter] = {}
    overdue: list[BreakLine] = []
    for brk, state, opened in _open_then(report):
        table.setdefault((brk.account, brk.kind), Counter())["open"] += 1
        ages.setdefault(brk.account, Counter())[age_bucket(opened, report.as_of)] += 1
        # The current episode's due time is the row's; an earlier episode's is recomputed.
        due = brk.due_at if opened == brk.opened_at else opened + due_after(brk.severity)
        if due <= report.as_of:
            overdue.append(_line(brk, state=state, opened=opened, due=due, now=report.as_of))
    report.by_kind = [
        {"account": a, "kind": k, **{n: c[n] for n in ("opened", "closed", "open")}}
        for (a, k), c in sorted(table.items())
    ]
    report.by_age = [
        {"account": a, **{b.key: c[b.key] for b in AGE_BUCKETS}, "total": sum(c.values())}
        for a, c in sorted(ages.items())
    ]
    overdue.sort(key=lambda line: (line.due_at, line.id))
    report.overdue, report.overdue_total = overdue[:LIST_MAX], len(overdue)


def _open_then(report: EodReport):
    """(break, state, opened) of each break live at ``as_of``, from its last event by then: a
    break live then is live now or left live later (``closed_at`` after ``as_of``)."""
    by_then = BreakEvent.objects.filter(
        break_case=OuterRef("pk"), created_at__lte=report.as_of
    ).order_by("-created_at", "-id")
    opened = by_then.filter(kind__in=(Ev.OPENED, Ev.REOPENED))
    candidates = _mine(Break.objects, report).filter(
        Q(state__in=LIVE_STATES) | Q(closed_at__gt=report.as_of), first_seen_at__lte=report.as_of
    )
    rows = candidates.annotate(
        state_then=Subquery(by_then.values("state_to")[:1]),
        opened_then=Subquery(opened.values("created_at")[:1]),
    ).order_by("due_at", "pk")
    for brk in rows.iterator(chunk_size=2000):
        if brk.state_then in LIVE_STATES:
            yield brk, brk.state_then, brk.opened_then or brk.opened_at


def _line(brk: Break, *, state: str, opened: datetime, due: datetime, now: datetime) -> BreakLine:
    return BreakLine(
        id=brk.pk,
        account=brk.account,
        kind=brk.kind,
        symbol=brk.symbol or brk.client_order_id or ", ".join(brk.signal_ids),
        severity=brk.severity,
        state=state,
        owner=brk.owner_username,
        opened_at=opened,
        due_at=due,
        age=human_age(age(opened, now)),
    )


def _repairs(report: EodReport) -> None:
    repaired = _mine(
        BreakEvent.objects.filter(
            kind=Ev.REPAIRED, created_at__gte=report.start, created_at__lt=report.as_of
        ),
        report,
        "break_case__account",
    ).select_related("break_case")
    report.repaired_total = repaired.count()
    report.repaired = [
        _line(e.break_case, state=e.state_to, opened=e.break_case.opened_at,
              due=e.break_case.due_at, now=e.created_at)
        for e in repaired.order_by("created_at", "id")[:LIST_MAX]
    ]  # fmt: skip
    mismatches = _mine(
        Mismatch.objects.filter(created_at__gte=report.start, created_at__lt=report.as_of),
        report,
    ).order_by()
    done = mismatches.ended_as(*REPAIRED_ACTIONS).with_final_action()
    rows = done.values_list("account", "final_action").annotate(n=Count("id"))
    report.repairs = [
        {"account": a, "action": action, "label": Mismatch.Action(action).label, "count": n}
        for a, action, n in sorted(rows)
    ]


def _rejected(report: EodReport) -> None:
    rejected = _mine(
        OrderAttempt.objects.filter(
            status=OrderAttempt.Status.REJECTED,
            alpaca_order_id="",
            created_at__gte=report.start,
            created_at__lt=report.as_of,
        ),
        report,
    )
    report.rejected_total = rejected.count()
    report.rejected = list(rejected.order_by("created_at", "id")[:LIST_MAX])


# --- Renderings that need no template: the CSV attachment and the plain text ----------------------

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    text = "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text.startswith(_FORMULA) else text  # a spreadsheet formula made inert


def report_csv(report: EodReport) -> str:
    """One CSV, a section per row kind: ``breaks`` (opened, closed, open by account and kind),
    ``open_by_age``, ``overdue``, ``repaired_break``, ``repair``, ``rejected_order``,
    ``audit_verification``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "account", "kind", "item", "count", "id", "symbol", "at", "detail"])
    rows: list[list] = []
    for r in report.by_kind:
        rows += [
            ["breaks", r["account"], r["kind"], n, r[n], "", "", "", ""]
            for n in ("opened", "closed", "open")
        ]
    for r in report.by_age:
        rows += [
            ["open_by_age", r["account"], "", b.key, r[b.key], "", "", "", ""] for b in AGE_BUCKETS
        ]
    for line in report.overdue:
        rows.append(
            [
                "overdue",
                line.account,
                line.kind,
                line.state,
                1,
                line.id,
                line.symbol,
                line.due_at,
                line.owner,
            ]
        )
    for line in report.repaired:
        rows.append(
            [
                "repaired_break",
                line.account,
                line.kind,
                line.state,
                1,
                line.id,
                line.symbol,
                line.opened_at,
                "",
            ]
        )
    for r in report.repairs:
        rows.append(["repair", r["account"], "", r["action"], r["count"], "", "", "", ""])
    for a in report.rejected:
        rows.append(
            [
                "rejected_order",
                a.account,
                "",
                a.client_order_id,
                1,
                a.pk,
                a.symbol,
                a.created_at,
                a.reason,
            ]
        )
    if (v := report.verification) is not None:
        rows.append(
            [
                "audit_verification",
                "",
                "",
                "ok" if v.ok else "broken",
                v.problems,
                v.pk,
                "",
                v.started_at,
                v.first_problem,
            ]
        )
    writer.writerows([_cell(c) for c in row] for row in rows)  # fmt: skip
    return out.getvalue()


def report_text(report: EodReport) -> str:
    """The report as plain text (the command's output and the e-mail's text part)."""
    t = report.totals
    lines = [
        f"End-of-day report {report.day} ({report.tz}), as of {report.as_of:%Y-%m-%d %H:%M} UTC",
        f"Breaks: {t['opened']} opened, {t['closed']} closed, {t['open']} still open, "
        f"{report.overdue_total} overdue.",
    ]
    lines += [
        f"  {r['account']:<10} {r['kind']:<20} opened {r['opened']:>5}  closed {r['closed']:>5}"
        f"  open {r['open']:>5}"
        for r in report.by_kind
    ]
    for r in report.by_age:
        ages = ", ".join(f"{b.label} {r[b.key]}" for b in AGE_BUCKETS)
        lines.append(f"  open by age, {r['account']}: {ages}")
    lines.append(f"Overdue: {report.overdue_total}")
    lines += [f"  #{b.id} {b.account} {b.kind} {b.symbol} due {b.due_at:%Y-%m-%d %H:%M} UTC, "
              f"owner {b.owner or '-'}" for b in report.overdue]  # fmt: skip
    lines.append(f"Repairs: {report.repaired_total} break(s) closed as repaired")
    lines += [f"  {r['account']} {r['label']}: {r['count']}" for r in report.repairs]
    lines.append(f"Orders rejected before sending: {report.rejected_total}")
    lines += [f"  {a.account} {a.client_order_id} {a.symbol}: {a.reason}" for a in report.rejected]
    v = report.verification
    lines.append(
        "Last audit verification: none"
        if v is None
        else f"Last audit verification: {'intact' if v.ok else 'BROKEN'} at "
        f"{v.started_at:%Y-%m-%d %H:%M} UTC, {v.rows_checked} rows, {v.problems} problem(s)"
        + (f": {v.first_problem}" if v.first_problem else "")
    )
    return "\n".join(lines) + "\n"
