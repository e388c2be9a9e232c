"""The report of one finished run, as ``manage.py reconcile --json`` prints it.

Reads the run's row and its mismatches (with each one's final action); writes nothing.
"""

from __future__ import annotations

from .models import ReconciliationRun


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
