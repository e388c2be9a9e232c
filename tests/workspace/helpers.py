"""Audit rows for the workspace tests, written through the real writers where one exists."""

from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from brokerops.intent.models import LocalSignal
from ledger.models import AccountActivity
from orders.models import OrderExecution
from orders.services.events import order_executions_append
from reconciliation.diff import Finding, ReconciliationErrors, Severity
from reconciliation.models import Mismatch, ReconciliationRun
from reconciliation.plan import PlannedRepair, Verdict
from reconciliation.records import mismatches_complete, mismatches_record
from tests import factories


def record_mismatch(
    *,
    kind: ReconciliationErrors,
    run: ReconciliationRun | None = None,
    outcome: tuple[str, str] | None = None,
    **finding_fields,
) -> Mismatch:
    """One mismatch through ``mismatches_record`` (and its repair outcome, if given); a
    finding about several signals is given their ``signal_ids``."""
    run = run or factories.reconciliation_run()
    finding_fields.setdefault("severity", Severity.WARNING)
    if finding_fields.get("signal_ids"):  # as the diff writes a finding about several signals
        finding_fields.setdefault("signal_id", ",".join(finding_fields["signal_ids"]))
    finding = Finding(kind=kind, **finding_fields)
    verdict = Verdict.REPAIR if outcome else Verdict.FLAG
    (row,) = mismatches_record(
        run=run, planned=[PlannedRepair(finding=finding, verdict=verdict)], dry_run=False
    )
    if outcome:
        mismatches_complete(rows=[row], outcomes={0: outcome}, actor="reconciliation-test")
    return row


def local_signal(signal_id: str, **data) -> LocalSignal:
    now = timezone.now()
    document = {
        "symbol": "AAPL",
        "side": "buy",
        "qty": 10,
        "order_type": "market",
        "status": "ACTIVE",
        **data,
    }
    return LocalSignal.objects.create(
        document_id=signal_id,
        data=document,
        status=document["status"],
        updated_at=now,
    )


def execution(*, attempt, execution_id: str, qty: str, at: datetime) -> OrderExecution:
    (row,) = order_executions_append(
        [
            OrderExecution(
                execution_id=execution_id,
                attempt=attempt,
                event="fill",
                qty=Decimal(qty),
                price=Decimal("187.250000"),
                position_qty=Decimal(qty),
                executed_at=at,
                received_at=at + timedelta(milliseconds=5),
            )
        ]
    )
    return row


def account_activity(n: int = 1, *, account: str = "default", **fields) -> AccountActivity:
    """An account activity stored through the ledger's writer (a fill of AAPL by default)."""
    from brokerops.alpaca.parsing import parse_activities
    from ledger.services import activities_record

    body = {
        "id": f"20260105{n:09d}::00000000-0000-4000-8000-{n:012d}",
        "activity_type": "FILL",
        "type": "fill",
        "transaction_time": "2026-01-05T14:30:00Z",
        "qty": "1",
        "price": "10",
        "side": "buy",
        "symbol": "AAPL",
        **fields,
    }
    activities_record(account=account, activities=parse_activities([body]))
    return AccountActivity.objects.get(account=account, activity_id=body["id"])
