"""The timeline of one order (docs/design.md section 7): everything the trail knows about a
``client_order_id``, as plain data in causal order, each entry naming the admin row it comes from.

Causal order (:func:`causal_order`): time order, except where two clocks disagree with what must
have happened first. The signal is created before our first request for it (its writer's clock
may run ahead of ours), and a fill comes after the broker's answer to our request (the broker
stamps a fill with its own clock, and its answer reaches us after the fill may already have
happened): such an entry is placed by the moment it cannot precede, keeping its own time shown.

Sources: the signal (its current state in the store, and the transitions the order services
recorded as ``signal_transition`` events), the ``OrderAttempt``, every ``OrderEvent`` (requests,
responses, status changes, re-syncs and who asked), the ``OrderExecution`` fills, and the
reconciliation ``Mismatch`` rows naming the order (by ``client_order_id``, Alpaca order id or
the signal, through ``MismatchSignal``) with the run that found each and the repair's outcome,
and the account activities Alpaca booked for the order (its ``FILL`` rows, by Alpaca order id).

A fixed number of queries whatever the number of events (each source is one query, capped):
the page stays fast at millions of rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Q
from django.urls import reverse

from brokerops.accounts import configured
from brokerops.intent.factory import get_signal_store
from brokerops.intent.models import LocalSignal, stored_document_id
from brokerops.intent.schema import InvalidSignal, Signal, audit_signal_id, parse_signal
from brokerops.intent.store import SignalStoreError
from ledger.models import AccountActivity
from orders.client_order_id import LEGS, client_order_id_for, parse_client_order_id
from orders.models import OrderAttempt, OrderEvent, OrderExecution
from reconciliation.models import Mismatch, MismatchSignal
from workspace.access import only_visible, signal_owner, signal_visible
from workspace.display import plain_decimal, status_words, when

logger = logging.getLogger(__name__)

#: Rows read per source at most; the newest mismatches are kept, the first events.
MAX_EVENTS = 1000
MAX_FILLS = 1000
MAX_MISMATCHES = 300
MAX_ACTIVITIES = 1000


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened. ``source`` names the table (``signal``, ``attempt``, ``event``,
    ``fill``, ``activity``, ``mismatch``, ``repair``); ``payload`` is JSON to show folded, if
    any."""

    at: datetime | None
    source: str
    title: str
    detail: str = ""
    actor: str = ""
    links: tuple[Link, ...] = ()
    payload: Any = None
    rank: int = 0  # breaks ties between sources at the same instant
    seq: int = 0  # and within a source, its row order
    stage: str = ""  # "created" (the signal), "ours" (our rows), "answer", "fill": causal_order
    placed_at: datetime | None = None  # where causal_order put it (None: at ``at``)


@dataclass(frozen=True)
class SignalState:
    signal_id: str
    status: str
    problems: tuple[str, ...] = ()
    symbol: str = ""
    status_reason: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    link: Link | None = None
    unavailable: str = ""  # why the store could not be read
    account: str | None = None  # the document's `account` field (None: names none)


@dataclass(frozen=True)
class Timeline:
    client_order_id: str
    attempt: OrderAttempt | None
    attempt_link: Link | None
    signal: SignalState | None
    entries: list[TimelineEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left out (caps)
    accounts: tuple[str, ...] = ()  # the accounts of the rows shown
    signal_hidden: bool = False  # the signal is another account's (the reader does not see it)


def _admin_link(label: str, name: str, pk: Any) -> Link:
    return Link(label, reverse(f"admin:{name}_change", args=[pk]))


def order_timeline(
    *, client_order_id: str, signal_id: str = "", visible: frozenset[str] | None = None
) -> Timeline | None:
    """The timeline of ``client_order_id``; None when the trail knows nothing of it.

    ``signal_id`` names the signal when the id cannot (a hashed id with no attempt yet: the
    signal's own page links here with it); it counts only when ``client_order_id`` is made from
    it. ``visible``: the accounts the reader may see (:mod:`workspace.access`; None: all); rows
    of other accounts are left out, and with nothing left the trail knows nothing of it."""
    if "\x00" in client_order_id:  # no database text holds NUL: no row can name it
        return None
    attempt = only_visible(
        OrderAttempt.objects.filter(client_order_id=client_order_id), visible
    ).first()
    if attempt is not None:
        store_id, signal_id = attempt.store_signal_id, attempt.signal_id  # raw, audit form
    else:
        store_id = _signal_id_of(client_order_id) or _named_signal(client_order_id, signal_id)
        signal_id = audit_signal_id(store_id) if store_id else ""
    notes: list[str] = []
    entries: list[TimelineEntry] = []
    signal = _signal_state(store_id) if store_id else None
    signal_hidden = (
        signal is not None
        and not signal.unavailable  # whose it is cannot be told: nothing of it is shown
        and not signal_visible(signal.account, visible)
    )
    if signal_hidden:
        signal = None
    if signal is not None:
        entries += _signal_entries(signal)
    if attempt is not None:
        entries += _attempt_entries(attempt, notes)
        entries += activity_entries(attempt, notes)
    mismatches = _mismatches(
        client_order_id=client_order_id,
        alpaca_order_id=attempt.alpaca_order_id if attempt is not None else "",
        signal_id=signal_id,
        visible=visible,
        notes=notes,
    )
    for mismatch in mismatches:
        entries += _mismatch_and_outcome(mismatch)
    if attempt is None and not entries and (signal is None or signal.unavailable):
        return None
    entries = causal_order(entries)
    return Timeline(
        client_order_id=client_order_id,
        attempt=attempt,
        attempt_link=(
            _admin_link(client_order_id, "orders_orderattempt", attempt.pk) if attempt else None
        ),
        signal=signal,
        entries=entries,
        notes=notes,
        accounts=_accounts_shown(attempt, signal, mismatches),
        signal_hidden=signal_hidden,
    )


#: Event kinds that carry the broker's answer to our request (or what stands for it).
ANSWER_KINDS = frozenset(
    {OrderEvent.Kind.RESPONSE, OrderEvent.Kind.ADOPTED, OrderEvent.Kind.LOOKUP}
)


def causal_order(entries: list[TimelineEntry]) -> list[TimelineEntry]:
    """``entries`` in causal order: by time, except that the signal's creation never follows our
    first row about its order, and a fill never precedes the broker's first answer (each placed
    just there, its own time kept); ties by source rank, then row order. Undated entries come
    first (they cannot be placed in time)."""
    ours = [e.at for e in entries if e.stage == "ours" and e.at is not None]
    answers = [e.at for e in entries if e.stage == "answer" and e.at is not None]
    first_ours = min(ours, default=None)
    first_answer = min(answers, default=None)
    placed = []
    for entry in entries:
        at = entry.at
        if at is not None and entry.stage == "created" and first_ours and at > first_ours:
            at = first_ours
        elif at is not None and entry.stage == "fill" and first_answer and at < first_answer:
            at = first_answer
        placed.append(replace(entry, placed_at=at) if at != entry.at else entry)
    placed.sort(
        key=lambda e: (
            e.at is not None,
            e.placed_at or e.at or datetime.min,
            e.rank,
            e.seq,
        )
    )
    return placed


def _accounts_shown(
    attempt: OrderAttempt | None, signal: SignalState | None, mismatches: list[Mismatch]
) -> tuple[str, ...]:
    accounts = {m.account for m in mismatches}
    if attempt is not None:
        accounts.add(attempt.account)
    if signal is not None and not signal.unavailable:
        accounts.add(signal_owner(signal.account))
    return tuple(sorted(accounts))


def _prefixes() -> list[str]:
    """Every configured account's client_order_id prefix (docs/design.md section 16)."""
    return [account.client_order_id_prefix for account in configured()]


def _signal_id_of(client_order_id: str) -> str:
    for prefix in _prefixes():
        parsed = parse_client_order_id(client_order_id, prefix=prefix)
        if parsed:
            return parsed[0]
    return ""


def _named_signal(client_order_id: str, signal_id: str) -> str:
    """``signal_id`` when ``client_order_id`` is one of its legs' ids, else ""."""
    if not signal_id:
        return ""
    made = {
        client_order_id_for(signal_id=signal_id, leg=leg, prefix=prefix)
        for leg in LEGS
        for prefix in _prefixes()
    }
    return signal_id if client_order_id in made else ""


def _signal_state(signal_id: str) -> SignalState | None:
    """The signal as the store holds it now (None: the store has no such document)."""
    link = None
    if settings.SIGNAL_STORE == "local":
        row = (
            LocalSignal.objects.filter(document_id=stored_document_id(signal_id))
            .only("pk", "document_id", "data", "created_at", "updated_at")
            .first()
        )
        if row is None:
            return None
        parsed = parse_signal(signal_id, row.data)
        link = _admin_link(signal_id, "intent_localsignal", row.pk)
    else:
        try:
            parsed = get_signal_store().get(signal_id)
        except (SignalStoreError, ValueError) as exc:
            logger.warning("timeline: signal %r not read: %s", signal_id, exc)
            return SignalState(signal_id, status="?", unavailable=str(exc))
        if parsed is None:
            return None
    if isinstance(parsed, InvalidSignal):
        return SignalState(
            signal_id,
            status=parsed.raw_status or "?",
            problems=parsed.reasons,
            symbol=str(parsed.raw.get("symbol") or ""),
            link=link,
            account=parsed.raw_account,
        )
    return _valid_state(parsed, link)


def _valid_state(signal: Signal, link: Link | None) -> SignalState:
    return SignalState(
        signal.id,
        status=str(signal.status),
        symbol=signal.symbol,
        status_reason=signal.status_reason or "",
        created_at=signal.created_at,
        updated_at=signal.updated_at,
        link=link,
        account=signal.account,
    )


def _signal_entries(signal: SignalState) -> list[TimelineEntry]:
    links = (signal.link,) if signal.link else ()
    entries = []
    if signal.created_at is not None:
        entries.append(
            TimelineEntry(
                signal.created_at, "signal", "Signal created", links=links, rank=0, stage="created"
            )
        )
    if signal.updated_at is not None and signal.updated_at != signal.created_at:
        entries.append(
            TimelineEntry(
                signal.updated_at,
                "signal",
                f"Signal last changed: now {status_words(signal.status)}",
                detail=signal.status_reason,
                links=links,
                rank=9,
            )
        )
    return entries


def _attempt_entries(attempt: OrderAttempt, notes: list[str]) -> list[TimelineEntry]:
    link = _admin_link(attempt.client_order_id, "orders_orderattempt", attempt.pk)
    entries = [
        TimelineEntry(
            attempt.created_at,
            "attempt",
            "Order attempt recorded",
            detail=f"{attempt.get_side_display()} {plain_decimal(attempt.qty)} {attempt.symbol}, "
            f"{attempt.get_order_type_display().lower()}",
            links=(link,),
            payload=attempt.request_payload or None,
            rank=1,
            stage="ours",
        )
    ]
    events = list(
        OrderEvent.objects.filter(attempt_id=attempt.pk)
        .order_by("created_at", "id")
        .defer("prev_hash", "hash")[: MAX_EVENTS + 1]
    )
    if len(events) > MAX_EVENTS:
        events = events[:MAX_EVENTS]
        notes.append(f"only the first {MAX_EVENTS} events are shown: see the events list")
    entries += [_event_entry(event) for event in events]
    fills = list(
        OrderExecution.objects.filter(attempt_id=attempt.pk).order_by("received_at", "id")[
            : MAX_FILLS + 1
        ]
    )
    if len(fills) > MAX_FILLS:
        fills = fills[:MAX_FILLS]
        notes.append(f"only the first {MAX_FILLS} fills are shown")
    entries += [_fill_entry(fill) for fill in fills]
    return entries


def _event_entry(event: OrderEvent) -> TimelineEntry:
    kind = OrderEvent.Kind(event.kind).label if event.kind in OrderEvent.Kind.values else event.kind
    if event.kind == OrderEvent.Kind.RESYNC_REQUESTED:
        title = f"Re-sync requested by {event.actor or 'unknown'}"
    elif event.kind == OrderEvent.Kind.SIGNAL_TRANSITION:
        moved = status_words(event.status_to) if event.status_to else "(not moved)"
        title = f"Signal moved: {status_words(event.status_from)} \u2192 {moved}"
    else:
        title = str(kind)
        if event.status_from or event.status_to:
            title += f": {status_words(event.status_from)} \u2192 {status_words(event.status_to)}"
    if event.http_status:
        title += f" (HTTP {event.http_status})"
    return TimelineEntry(
        event.created_at,
        "signal" if event.kind == OrderEvent.Kind.SIGNAL_TRANSITION else "event",
        title,
        detail=event.message,
        actor=event.actor,
        links=(_admin_link(f"event #{event.pk}", "orders_orderevent", event.pk),),
        payload=event.payload or None,
        rank=2,
        seq=event.pk,
        stage="answer" if event.kind in ANSWER_KINDS else "ours",
    )


def _fill_entry(fill: OrderExecution) -> TimelineEntry:
    price = f" @ {plain_decimal(fill.price)}" if fill.price is not None else ""
    position = (
        f"; position after: {plain_decimal(fill.position_qty)}"
        if fill.position_qty is not None
        else ""
    )
    clock = (
        f"; executed at the broker (its clock), received {when(fill.received_at)}"
        if fill.executed_at
        else ""
    )
    return TimelineEntry(
        fill.executed_at or fill.received_at,
        "fill",
        f"{fill.event.replace('_', ' ').capitalize()}: {plain_decimal(fill.qty)}{price}",
        detail=f"execution {fill.execution_id}{position}{clock}",
        links=(_admin_link(f"fill {fill.execution_id}", "orders_orderexecution", fill.pk),),
        rank=3,
        seq=fill.pk,
        stage="fill",
    )


def activity_entries(attempt: OrderAttempt, notes: list[str]) -> list[TimelineEntry]:
    """The account activities of the attempt's order (``order_id`` = its Alpaca order id, in its
    account), in booking order, capped (docs/design.md section 18.2)."""
    if not attempt.alpaca_order_id:
        return []
    rows = list(
        AccountActivity.objects.filter(account=attempt.account, order_id=attempt.alpaca_order_id)
        .order_by("id")
        .defer("raw", "prev_hash", "hash")[: MAX_ACTIVITIES + 1]
    )
    if len(rows) > MAX_ACTIVITIES:
        rows = rows[:MAX_ACTIVITIES]
        notes.append(f"only the first {MAX_ACTIVITIES} account activities are shown")
    entries = []
    for row in rows:
        figures = " ".join(
            part
            for part in (
                row.side,
                plain_decimal(row.qty) if row.qty is not None else "",
                f"@ {plain_decimal(row.price)}" if row.price is not None else "",
            )
            if part
        )
        title = f"Alpaca activity {row.activity_type}"
        title += f" ({row.sub_type})" if row.sub_type else ""
        entries.append(
            TimelineEntry(
                row.occurred_at or row.recorded_at,
                "activity",
                f"{title}: {figures}" if figures else title,
                detail=f"activity {row.activity_id}",
                links=(
                    _admin_link(f"activity {row.activity_id}", "ledger_accountactivity", row.pk),
                ),
                rank=3,
                seq=row.pk,
            )
        )
    return entries


def _mismatches(
    *,
    client_order_id: str,
    alpaca_order_id: str,
    signal_id: str,
    visible: frozenset[str] | None,
    notes: list[str],
) -> list[Mismatch]:
    """The mismatches naming the order (its ids or its signal), newest first, capped."""
    naming = Q(client_order_id=client_order_id)
    if alpaca_order_id:
        naming |= Q(alpaca_order_id=alpaca_order_id)
    if signal_id:
        # Ids first (an exact look-up on the relation's index), so the mismatch query stays a
        # union of index scans.
        ids = list(
            MismatchSignal.objects.filter(signal_id=signal_id)
            .order_by("-mismatch_id")
            .values_list("mismatch_id", flat=True)[:MAX_MISMATCHES]
        )
        naming |= Q(signal_id=signal_id) | Q(pk__in=ids)
    rows = list(
        only_visible(Mismatch.objects.filter(naming), visible)
        .select_related("run", "outcome")
        .order_by("-created_at", "-id")[: MAX_MISMATCHES + 1]
    )
    if len(rows) > MAX_MISMATCHES:
        rows = rows[:MAX_MISMATCHES]
        notes.append(f"only the newest {MAX_MISMATCHES} mismatches are shown: see the list")
    return rows


def _quantities(mismatch: Mismatch) -> str:
    if mismatch.expected_qty is None and mismatch.actual_qty is None:
        return ""
    return (
        f"expected {plain_decimal(mismatch.expected_qty)}, "
        f"Alpaca {plain_decimal(mismatch.actual_qty)}"
    )


def _mismatch_and_outcome(mismatch: Mismatch) -> list[TimelineEntry]:
    run = mismatch.run
    mismatch_link = _admin_link(f"mismatch #{mismatch.pk}", "reconciliation_mismatch", mismatch.pk)
    run_link = _admin_link(f"run #{run.pk}", "reconciliation_reconciliationrun", run.pk)
    final = mismatch.outcome_label
    detail = "; ".join(d for d in (_quantities(mismatch), mismatch.detail) if d)
    entries = [
        TimelineEntry(
            mismatch.created_at,
            "mismatch",
            f"{mismatch.get_kind_display()} ({mismatch.get_severity_display().lower()}) "
            f"found by run #{run.pk} "
            f"({run.get_trigger_display().lower()}{', dry run' if run.dry_run else ''}); "
            f"outcome: {final}",
            detail=detail,
            actor=run.requested_by_username,
            links=(mismatch_link, run_link),
            rank=4,
            seq=mismatch.pk,
        )
    ]
    outcome = getattr(mismatch, "outcome", None)
    if outcome is not None:
        entries.append(
            TimelineEntry(
                outcome.created_at,
                "repair",
                f"Repair outcome: {Mismatch.Action(outcome.action).label}"
                if outcome.action in Mismatch.Action.values
                else f"Repair outcome: {outcome.action}",
                detail=outcome.message,
                actor=outcome.actor,
                links=(mismatch_link, run_link),
                payload=outcome.payload or None,
                rank=5,
                seq=mismatch.pk,
            )
        )
    return entries


def timeline_url(client_order_id: str, *, signal_id: str = "") -> str:
    """The timeline page of ``client_order_id``; ``signal_id`` (the signal the link starts from)
    goes in the query when the id does not carry it (hashed), so the page can find the signal
    before any attempt exists."""
    url = reverse("order_timeline", kwargs={"client_order_id": client_order_id})
    if signal_id and _signal_id_of(client_order_id) != signal_id:
        url += "?" + urlencode({"signal": signal_id})
    return url


def signal_client_order_id(signal_id: str, data: Any = None) -> str:
    """The client_order_id of a signal's entry order: the one its document records, else the
    deterministic id (:func:`orders.client_order_id.client_order_id_for`)."""
    recorded = data.get("client_order_id") if isinstance(data, dict) else None
    if isinstance(recorded, str) and recorded:
        return recorded
    named = data.get("account") if isinstance(data, dict) else None
    prefix = configured().get(signal_owner(named)).client_order_id_prefix
    return client_order_id_for(signal_id=signal_id, prefix=prefix)


__all__ = [
    "Link",
    "SignalState",
    "Timeline",
    "TimelineEntry",
    "order_timeline",
    "signal_client_order_id",
    "timeline_url",
]
