"""Alerts listen: the floors below announce, alerts raises or resolves (docs/design.md section
13). Connected in :meth:`alerts.apps.AlertsConfig.ready`; nothing below imports alerts."""

from __future__ import annotations

from .breaks import alerts_overdue_after_run
from .runs import alerts_reconciliation_run_finished
from .services import alerts_audit_verified


def on_run_finished(sender, *, run, **_) -> None:
    """``reconciliation.signals.run_finished``: a run ended (its rows are committed)."""
    alerts_reconciliation_run_finished(run=run)
    alerts_overdue_after_run(run=run)


def on_verification_finished(sender, *, verification, **_) -> None:
    """``audit.signals.verification_finished``: a verification is stored."""
    alerts_audit_verified(verification=verification)
