"""PENDING documents that do not parse: REJECTED with the reasons, nothing sent (docs/design.md
section 3).

A document whose status reads PENDING but whose order cannot be built (a limit order without
``limit_price``, a quantity out of range) would otherwise wait forever. It gets an attempt row
(so compliance finds it by signal id or client_order_id) with the validation failure, and the
document moves PENDING -> REJECTED, conditionally, writing only its status fields. A document
whose status cannot be read is never read as PENDING and never touched.

A signal naming an account that is not configured is rejected here too (docs/design.md section
16), once: only the account that owns unowned rows (`Accounts.rows_owner`) reads it, as an
`InvalidSignal` saying so (`AccountScope`), and its attempt is that account's.
"""

from dataclasses import replace

from django.db import transaction

from brokerops.accounts import AccountConfig
from brokerops.intent.schema import InvalidSignal, SignalStatus, audit_signal_id
from brokerops.intent.store import SignalStore, Transition, TransitionOutcome, TransitionResult
from brokerops.text import db_field_text, db_json, db_text
from orders.client_order_id import client_order_id_for
from orders.lifecycle import SignalMove, signals_move_record
from orders.models import OrderAttempt, OrderEvent

from .events import order_event_record
from .outcomes import Outcome, SignalOutcome

Status = OrderAttempt.Status


def reject_invalid_signal(
    doc: InvalidSignal, *, store: SignalStore, actor: str, account: AccountConfig
) -> SignalOutcome:
    """Reject one unparseable PENDING document, its attempt ``account``'s (idempotent: a second
    call finds the attempt)."""
    coid = client_order_id_for(signal_id=doc.id, prefix=account.client_order_id_prefix)
    reason = "invalid signal: " + "; ".join(doc.reasons)
    attempt, created = _rejected_attempt(doc, coid, reason, account.name)
    coid = attempt.client_order_id  # another account's, when the signal has one there already
    if not created and attempt.status != Status.REJECTED:
        # Its order reached the broker before the document broke: that is not ours to undo.
        why = f"document does not parse but its order is {attempt.status}: fix the document"
        return SignalOutcome(doc.id, coid, Outcome.ALREADY, why, attempt.alpaca_order_id)
    # On the version read (docs/design.md section 4): a document rewritten since is decided
    # again on what it holds now, never rejected for what it held.
    move = SignalMove(
        transition=Transition(
            signal_id=doc.id,
            expected_status=SignalStatus.PENDING,
            new_status=SignalStatus.REJECTED,
            reason=reason[:500],
            expected_version=doc.version,
            allow_invalid=True,
        ),
        attempt=attempt,
        note=reason,
    )

    def on_changed(move: SignalMove, result: TransitionResult) -> SignalMove | None:
        current = result.current
        if not isinstance(current, InvalidSignal):  # it parses now: the next cycle decides
            return None
        why = "invalid signal: " + "; ".join(current.reasons)  # still broken, another way
        transition = replace(move.transition, reason=why[:500], expected_version=current.version)
        return replace(move, transition=transition, note=why)

    ((move, result),) = signals_move_record(
        moves=[move], store=store, actor=actor, on_changed=on_changed
    )
    reason = move.note
    if result.outcome is TransitionOutcome.CHANGED:  # it parses now: the next cycle decides
        why = "the document changed since it was read (it parses now): not rejected"
        return SignalOutcome(doc.id, coid, Outcome.DEFERRED, why)
    return SignalOutcome(doc.id, coid, Outcome.REJECTED, reason)


def _rejected_attempt(
    doc: InvalidSignal, coid: str, reason: str, account: str
) -> tuple[OrderAttempt, bool]:
    raw = doc.raw
    audit_id = audit_signal_id(doc.id)
    # The signal's one attempt may be another account's (it named that account before).
    elsewhere = (
        OrderAttempt.objects.filter(signal_id=audit_id, leg="entry")
        .exclude(client_order_id=coid)
        .first()
    )
    if elsewhere is not None:
        return elsewhere, False
    with transaction.atomic():
        attempt, created = OrderAttempt.objects.get_or_create(
            client_order_id=coid,
            defaults=dict(
                account=account,
                signal_id=audit_id,
                signal_ref=OrderAttempt.signal_ref_for(doc.id, audit_id),
                symbol=db_field_text(OrderAttempt, "symbol", doc.raw_symbol),
                side=_text(raw.get("side"), 8),
                order_type=_text(raw.get("order_type"), 16),
                status=Status.REJECTED,
                reason=db_text(reason),
                request_payload=db_json({"signal_id": repr(doc.id), "document": _printable(raw)}),
            ),
        )
        if created:
            order_event_record(
                attempt=attempt,
                kind=OrderEvent.Kind.VALIDATION_FAILED,
                status_to=Status.REJECTED,
                message=reason,
            )
    return attempt, created


def _text(value: object, length: int) -> str:
    return db_text(value.strip().lower(), max_length=length) if isinstance(value, str) else ""


def _printable(raw: dict) -> dict:
    """The document as JSON can hold it (timestamps and decimals as text)."""
    return {str(k): v if isinstance(v, str | int | bool | None) else str(v) for k, v in raw.items()}
