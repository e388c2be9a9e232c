"""Breaks for the workspace tests, opened by real runs (``mismatches_record`` matches them), and
the people who work on them."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import Permission, User
from django.urls import reverse

from reconciliation.diff import Finding, ReconciliationErrors, Severity
from reconciliation.models import Break
from reconciliation.plan import PlannedRepair, Verdict
from reconciliation.records import mismatches_record
from tests import factories

QTY = ReconciliationErrors.QTY_MISMATCH
ORPHAN = ReconciliationErrors.ORPHAN_POSITION
LIST_URL = "/admin/reconciliation/break/"


def finding(kind=QTY, symbol="TSLA", signal_ids=("s-1",), severity=Severity.WARNING, **extra):
    return Finding(
        kind=kind,
        severity=severity,
        symbol=symbol,
        signal_id=",".join(signal_ids),
        signal_ids=tuple(signal_ids),
        expected_qty=Decimal(10),
        actual_qty=Decimal(7),
        **extra,
    )


def run_with(*findings, account="default"):
    """One finished run finding ``findings``: returns the run and its mismatch rows."""
    run = factories.reconciliation_run(account=account)
    planned = [PlannedRepair(finding=f, verdict=Verdict.FLAG) for f in findings]
    return run, mismatches_record(run=run, planned=planned, dry_run=False)


def break_of(symbol: str) -> Break:
    return Break.objects.get(symbol=symbol)


def page_url(brk: Break) -> str:
    return reverse("admin:reconciliation_break_change", args=[brk.pk])


def act_url(brk: Break) -> str:
    return reverse("admin:reconciliation_break_act", args=[brk.pk])


def view_only_user(username: str = "vera") -> User:
    """Staff who may view breaks (and their events) and nothing more."""
    user = User.objects.create_user(username, password="pw-for-tests-1", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="reconciliation", codename__in=["view_break", "view_breakevent"]
        )
    )
    return user


def state(brk: Break) -> dict:
    """Everything about a break that an action could change: its row and its events."""
    brk = Break.objects.get(pk=brk.pk)
    row = {f.attname: getattr(brk, f.attname) for f in brk._meta.concrete_fields}
    return {"row": row, "events": list(brk.events.values_list("kind", "actor", "message"))}
