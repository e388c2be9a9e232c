"""The rules of a break that write nothing (docs/design.md section 17): what a discrepancy's key
is, when a break is due, which dispositions a person may propose, who may work on breaks, and
the bounds of what people write. :mod:`reconciliation.breaks`, the breaks' one writer, applies
them; the pages ask them too."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings

from brokerops.text import db_text

from .models import Break, Mismatch

#: The permissions of four eyes: operations propose, compliance approve (brokerops/access.py).
APPROVE = "reconciliation.approve_break"
PROPOSE = "reconciliation.propose_break"

#: The longest comment or reason kept (characters); a longer one is refused, saying so.
TEXT_MAX = 10_000


class BreakRefused(Exception):
    """A person's action on a break that its state or their permissions do not allow; the
    message says why, for the page or the command that asked."""


def break_key(
    *, account: str, kind: str, symbol: str, signal_ids: Sequence[str], order_id: str
) -> str:
    """What a discrepancy is, as a SHA-256: the account, the kind, the symbol, the sorted signal
    ids and the order (its client order id, else Alpaca's id)."""
    parts = (account, kind, symbol, ",".join(sorted(signal_ids)), order_id)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def due_after(severity: str) -> timedelta:
    """How long a break of ``severity`` may stay open (``BREAK_DUE_*_S``)."""
    seconds = {
        Mismatch.Severity.CRITICAL: settings.BREAK_DUE_CRITICAL_S,
        Mismatch.Severity.WARNING: settings.BREAK_DUE_WARNING_S,
    }.get(severity, settings.BREAK_DUE_INFO_S)
    return timedelta(seconds=seconds)


PROPOSABLE = (
    Break.Disposition.EXPLAINED,
    Break.Disposition.ACCEPTED,
    Break.Disposition.ESCALATED,
    Break.Disposition.WRITTEN_OFF,
)


def checked_text(value: str, what: str, *, required: bool = True) -> str:
    """A comment or reason as kept: stripped, required unless told, at most :data:`TEXT_MAX`."""
    text = (value or "").strip()
    if required and not text:
        raise BreakRefused(f"{what} is required")
    if len(text) > TEXT_MAX:
        raise BreakRefused(f"{what} is {len(text):,} characters; the limit is {TEXT_MAX:,}")
    return db_text(text)


def may_work(user) -> None:
    """Refuse a user who may view breaks but neither propose nor approve."""
    if not (user.has_perm(PROPOSE) or user.has_perm(APPROVE)):
        raise BreakRefused("you may view breaks but not work on them")


#: Kinds of break an activity can explain (a holding's quantity, or its presence).
EXPLAINABLE = (
    Mismatch.Kind.QTY_MISMATCH,
    Mismatch.Kind.UNTRACKED_POSITION,
    Mismatch.Kind.ORPHAN_POSITION,
)


def row_key(account: str, row: Mismatch, ids: Sequence[str]) -> str:
    """The key of a run's finding (its ``Mismatch`` row, not stored yet, and its signal ids)."""
    return break_key(
        account=account,
        kind=row.kind,
        symbol=row.symbol,
        signal_ids=ids,
        order_id=row.client_order_id or row.alpaca_order_id,
    )
