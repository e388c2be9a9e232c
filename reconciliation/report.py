"""The report of one finished run, as ``manage.py reconcile --json`` prints it, and of one break,
as ``manage.py breaks --json`` prints it.

Reads the rows; writes nothing.
"""

from __future__ import annotations

from datetime import datetime

from .ageing import is_overdue
from .models import Break, ReconciliationRun


def run_as_json(run: ReconciliationRun) -> dict:
    """The JSON object ``manage.py reconcile --json`` prints (docs/design.md section 10)."""
    return {
        "account": run.account,
        "run_id": run.pk,
        "status": run.status,
        "dry_run": run.dry_run,
        "positions_seen": run.positions_seen,
        "signals_seen": run.signals_seen,
        "orders_seen": run.orders_seen,
        "api_calls": run.api_calls,
        # Which read of the orders the run made (full or incremental) and why (section 18.3).
        "orders_read": run.summary.get("orders_read"),
        "duration_s": round(run.duration_s or 0.0, 3),
        "error": run.error or None,
        "mismatches": [
            {
                "kind": m.kind,
                "symbol": m.symbol,
                "signal_id": m.signal_id,
                "client_order_id": m.client_order_id,
                "expected_qty": None if m.expected_qty is None else _plain(m.expected_qty),
                "actual_qty": None if m.actual_qty is None else _plain(m.actual_qty),
                "action": m.final_action,
            }
            for m in run.mismatches.with_final_action().order_by("id")
        ],
    }


def _plain(value) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def break_as_json(brk: Break, *, now: datetime) -> dict:
    """The JSON object ``manage.py breaks --json`` prints (docs/design.md sections 10 and 17).
    ``resolution`` is None while the break is live; then how it ended: the disposition and its
    reason, who proposed and who approved, or the run that no longer found it."""
    return {
        "id": brk.pk,
        "account": brk.account,
        "kind": brk.kind,
        "symbol": brk.symbol,
        "signal_ids": list(brk.signal_ids),
        "client_order_id": brk.client_order_id,
        "state": brk.state,
        "severity": brk.severity,
        "opened_at": _iso(brk.opened_at),
        "last_seen_at": _iso(brk.last_seen_at),
        "occurrences": brk.occurrences,
        "owner": brk.owner_username or None,
        "due_at": _iso(brk.due_at),
        "overdue": is_overdue(state=brk.state, due_at=brk.due_at, now=now),
        "resolution": _resolution(brk),
    }


def _resolution(brk: Break) -> dict | None:
    if brk.state not in (Break.State.CLOSED, Break.State.RESOLVED):
        return None
    return {
        "disposition": brk.disposition or None,
        "reason": brk.reason or None,
        "proposed_by": brk.proposed_by_username or None,
        "approved_by": brk.approved_by_username or None,
        "cleared_by_run": brk.cleared_by_run_id,
        "needs_review": brk.needs_review,
        "closed_at": _iso(brk.closed_at),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
