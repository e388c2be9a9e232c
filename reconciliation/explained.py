"""Explained breaks in a run (docs/design.md section 18.4): read the account's stored activities,
work out what they explain (:mod:`reconciliation.explain`, pure), move the signals they fully
explain through the intent door (:mod:`brokerops.intent.follow`, each move an event on the
signal's order and a line of the run's record), and hand the diff the signals as moved.

A separate read beside :mod:`reconciliation.facts`: the activities come from the ledger's table
(``ledger.sync_activities`` keeps it current), never from the broker, so this step makes no API
call. Nothing here fails the run on an activity: bad input is recorded on the run
(``summary["explained"]``) and in the log, and the findings stay.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.db.models import Q

from brokerops.intent.follow import FollowRefused, follow_transition
from brokerops.intent.schema import Signal, SignalStatus
from brokerops.intent.store import SignalStore
from ledger.models import AccountActivity
from orders.lifecycle import SignalMove, signals_move_record
from orders.models import OrderAttempt

from .diff import DiffInput
from .explain import Booked, Explanation, Follow, Since, explain, followed_signal

logger = logging.getLogger(__name__)
#: Activity types that never move a signal's holding: not read (a fill is read by its order id).
_NOT_READ = ("FILL", "TRD", "CSD", "CSW", "CSR", "JNLC", "INT", "ACATC", "FEE")
_CHUNK = 1000  # order ids a query names at once (SQLite bounds a statement's parameters)


@dataclass
class Explained:
    """What the step leaves for the rest of the run."""

    diff_input: DiffInput
    signals_by_id: dict[str, Signal]
    explanation: Explanation = field(default_factory=Explanation)
    applied: list[Follow] = field(default_factory=list)


def activities_explain(
    *,
    account: str,
    diff_input: DiffInput,
    signals_by_id: dict[str, Signal],
    store: SignalStore,
    actor: str,
    dry_run: bool,
) -> Explained:
    """Follow what the account's activities fully explain (only in memory on a dry run);
    returns the diff's input and the signals as the run should see them after."""
    active = [s for s in diff_input.signals if getattr(s, "status", None) is SignalStatus.ACTIVE]
    booked = _activities(account, active) if active else []
    if not booked:  # the common case: nothing to explain, one query spent
        return Explained(diff_input, signals_by_id)
    sinces = _sinces(account, active, {b.activity.symbol_key for b in booked})
    held: dict[str, Decimal] = {}
    crypto = set()
    for position in diff_input.positions:
        held[position.symbol_key] = held.get(position.symbol_key, Decimal(0)) + position.qty
        if position.crypto:
            crypto.add(position.symbol_key)
    explanation = explain(
        signals=[(s, sinces[s.id]) for s in active],
        held=held,
        activities=booked,
        crypto=crypto,
        fee_tolerance_bps=diff_input.crypto_fee_tolerance_bps,
    )
    for note in explanation.notes:
        logger.warning("account %s: activity not followed: %s", account, note.line())
    applied = explanation.follows if dry_run else _write(explanation.follows, store, actor)
    moved = {f.signal_id: f for f in applied}
    signals = [followed_signal(s, moved[s.id]) if s.id in moved else s for s in diff_input.signals]
    by_id = dict(signals_by_id)
    if moved and not dry_run:  # the versions the repairs decide on: read again
        fresh = store.get_many(list(moved))
        by_id.update({i: s for i, s in fresh.items() if isinstance(s, Signal)})
    elif moved:
        by_id.update({s.id: s for s in signals if s.id in moved})
    explanation.follows = applied
    new_input = dataclasses.replace(diff_input, signals=signals, fee_posted=explanation.fee_posted)
    return Explained(new_input, by_id, explanation, applied)


def _sinces(account: str, signals: Sequence[Signal], symbols: set[str | None]) -> dict[str, Since]:
    """Each signal's start: its order's last fill in the ledger, else its creation. Fills are
    looked up only for signals on a symbol an activity names (the others follow nothing)."""
    order_ids = [
        s.alpaca_order_id for s in signals if s.alpaca_order_id and s.symbol_key in symbols
    ]
    fills: dict[str, int] = {}
    for start in range(0, len(order_ids), _CHUNK):
        rows = AccountActivity.objects.filter(
            account=account, order_id__in=order_ids[start : start + _CHUNK]
        )
        for pk, order_id in rows.order_by("id").values_list("id", "order_id"):
            fills[order_id] = max(pk, fills.get(order_id, pk))
    return {
        s.id: Since(fill_pk=fills.get(s.alpaca_order_id or ""), time=s.created_at) for s in signals
    }


def _activities(account: str, signals: Sequence[Signal]) -> list[Booked]:
    """The account's activities that may move a holding, dated from the earliest creation of
    an ACTIVE signal (all of them when a signal's creation is not known), in booking order."""
    rows = AccountActivity.objects.filter(account=account).exclude(
        Q(activity_type__in=_NOT_READ) | Q(activity_type__startswith="DIV")
    )
    created = [s.created_at for s in signals]
    if all(when is not None for when in created):
        # An activity after a signal's fill is dated after its creation; a corporate action
        # carries its day only (midnight UTC): a day's margin.
        rows = rows.filter(occurred_at__gte=min(created) - timedelta(days=1))
    return [Booked(row.pk, row.as_activity()) for row in rows.order_by("id")]


def _write(follows: Sequence[Follow], store: SignalStore, actor: str) -> list[Follow]:
    """Move the signals through the intent door, each on the version the run read; an event on
    its order's trail when it has one. Returns the follows applied (a signal changed since the
    read is left to the next run, which decides on the fresh copy)."""
    if not follows:
        return []
    read = store.get_many([f.signal_id for f in follows])
    coids = [s.client_order_id for s in read.values() if isinstance(s, Signal)]
    attempts = {
        a.client_order_id: a
        for a in OrderAttempt.objects.filter(client_order_id__in=[c for c in coids if c])
    }
    moves, kept = [], []
    for follow in follows:
        signal = read.get(follow.signal_id)
        if not isinstance(signal, Signal) or signal.symbol_key != follow.key_from:
            logger.warning("signal %r changed before it followed: next run", follow.signal_id)
            continue
        try:
            transition = follow_transition(
                signal,
                qty=follow.qty_to,
                symbol=follow.symbol_to,
                activity_ids=follow.activity_ids,
                reason=f"{actor}: {follow.reason()}",
            )
        except FollowRefused as exc:
            logger.warning("signal %r not moved: %s", follow.signal_id, exc)
            continue
        attempt = attempts.get(signal.client_order_id or "")
        moves.append(SignalMove(transition=transition, attempt=attempt, note=follow.reason()))
        kept.append(follow)
    recorded = signals_move_record(moves=moves, store=store, actor=actor, rounds=1)
    done = {result.signal_id for _, result in recorded if result.applied}
    for _, result in recorded:
        if not result.applied:
            logger.warning(
                "signal %r did not follow: %s %s", result.signal_id, result.outcome, result.detail
            )
    return [f for f in kept if f.signal_id in done]
