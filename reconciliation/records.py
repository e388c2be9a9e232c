"""The one writer of ``Mismatch``, ``MismatchSignal`` and ``RunEvent`` rows (append-only,
hash-chained).

A mismatch is stored before any repair; the repair's outcome is appended after it as the
mismatch's ``RunEvent`` (rows are never updated).

A figure the audit column cannot hold (the bounds of ``brokerops.fields.QTY_DIGITS``) is never
allowed to lose the row: the column stays empty and the figure goes into the detail, whole.
"""

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.chain import chain_append
from brokerops.fields import QTY_DIGITS
from brokerops.intent.schema import audit_signal_id
from brokerops.text import db_field_text, db_json, db_text

from .breaks import breaks_match
from .diff import Finding, ReconciliationErrors
from .models import Mismatch, MismatchSignal, ReconciliationRun, RunEvent
from .plan import PlannedRepair, Verdict

Action = Mismatch.Action
_QTY_LIMIT = Decimal(10) ** (QTY_DIGITS["max_digits"] - QTY_DIGITS["decimal_places"])
_QTY_STEP = Decimal(1).scaleb(-QTY_DIGITS["decimal_places"])
_BATCH = 1000
#: Kinds whose finding names every signal on its symbol, their ids joined with "," in the
#: mismatch's `signal_id` column; read back only for rows stored before `MismatchSignal` held
#: them one per row (the diff hands them over whole, in `Finding.signal_ids`).
JOINED_SIGNAL_KINDS = frozenset(
    {ReconciliationErrors.QTY_MISMATCH, ReconciliationErrors.SIDE_MISMATCH}
)


def storable_qty(value: Decimal | None) -> tuple[Decimal | None, str]:
    """``(value, "")`` when the quantity column holds it exactly, else ``(None, note)``."""
    if value is None:
        return None, ""
    if value.is_finite() and abs(value) < _QTY_LIMIT and value == value.quantize(_QTY_STEP):
        return value, ""
    return None, f"{value} does not fit the audit column"


def mismatches_record(
    *, run: ReconciliationRun, planned: Sequence[PlannedRepair], dry_run: bool
) -> list[Mismatch]:
    """Store one row per planned finding, in bulk; a planned repair is ``repair_started``
    (``dry_run`` on a dry run) until :func:`mismatches_complete` records its outcome.

    Each signal a finding names also gets its ``MismatchSignal`` row, in the same transaction,
    so a mismatch about several signals is found by each of them; each row is linked to its
    break (:func:`reconciliation.breaks.breaks_match`), in the same transaction too."""
    now = timezone.now()
    rows = []
    signals = []
    for item in planned:
        finding = item.finding
        expected, expected_note = storable_qty(finding.expected_qty)
        actual, actual_note = storable_qty(finding.actual_qty)
        signal_id = audit_signal_id(finding.signal_id) if finding.signal_id else ""
        notes = [finding.detail, item.detail]
        notes += [f"signal id {finding.signal_id!r}"] if signal_id != finding.signal_id else []
        notes += [f"expected qty {expected_note}"] if expected_note else []
        notes += [f"actual qty {actual_note}"] if actual_note else []
        rows.append(
            Mismatch(
                run=run,
                account=run.account,  # a mismatch is its run's account's (docs/design.md 16)
                kind=finding.kind.value,
                severity=finding.severity.value,
                # Symbols and ids come from the broker or the store: made safe and bounded.
                symbol=db_field_text(Mismatch, "symbol", finding.symbol),
                signal_id=signal_id,
                client_order_id=db_field_text(Mismatch, "client_order_id", finding.client_order_id),
                alpaca_order_id=db_field_text(Mismatch, "alpaca_order_id", finding.alpaca_order_id),
                expected_qty=expected,
                actual_qty=actual,
                action=initial_action(item, dry_run=dry_run),
                detail=db_text("; ".join(n for n in notes if n)),
                created_at=now,
            )
        )
        signals.append(finding_signal_ids(finding))
    with transaction.atomic():
        breaks_match(
            run=run, rows=rows, signal_ids=signals
        )  # each row's break, before it is stored
        stored = chain_append(rows, batch_size=_BATCH)
        chain_append(
            (
                MismatchSignal(mismatch=row, signal_id=signal_id)
                for row, ids in zip(stored, signals, strict=True)
                for signal_id in ids
            ),
            batch_size=_BATCH,
        )
    return stored


def finding_signal_ids(finding: Finding) -> list[str]:
    """The signal ids a finding names, each in its audit form, in order, once each."""
    parts = finding.signal_ids or ((finding.signal_id,) if finding.signal_id else ())
    return list(dict.fromkeys(audit_signal_id(part) for part in parts))


def initial_action(item: PlannedRepair, *, dry_run: bool) -> str:
    """The action a row is stored with, before any repair ran."""
    if item.verdict is Verdict.FLAG:
        return Action.FLAGGED
    if item.verdict is Verdict.SKIP:
        return Action.REPAIR_SKIPPED
    return Action.DRY_RUN if dry_run else Action.REPAIR_STARTED


def mismatches_complete(
    *, rows: Sequence[Mismatch], outcomes: Mapping[int, tuple[str, str]], actor: str
) -> list[RunEvent]:
    """Record each repair's outcome: ``outcomes`` maps a row's index to (action, detail)."""
    now = timezone.now()
    return chain_append(
        (
            RunEvent(
                run_id=rows[index].run_id,
                kind=RunEvent.Kind.REPAIR_OUTCOME,
                mismatch=rows[index],
                action=action,
                message=detail,
                actor=actor,
                created_at=now,
            )
            for index, (action, detail) in sorted(outcomes.items())
        ),
        batch_size=_BATCH,
    )


def run_event_record(
    *,
    run: ReconciliationRun,
    kind: str,
    message: str = "",
    payload: dict[str, Any] | None = None,
    actor: str = "",
) -> RunEvent:
    """Append one event of ``run`` (its status as it is now) to the run events' chain."""
    (event,) = chain_append(
        [
            RunEvent(
                run=run,
                kind=kind,
                status=run.status,
                message=db_text(message),
                payload=db_json(payload or {}),
                actor=actor[:150],
            )
        ]
    )
    return event


def run_events_record_many(
    *, runs: Sequence[ReconciliationRun], kind: str, message: str, actor: str
) -> list[RunEvent]:
    """One event per run, in one append."""
    return chain_append(
        RunEvent(run=run, kind=kind, status=run.status, message=db_text(message), actor=actor[:150])
        for run in runs
    )
