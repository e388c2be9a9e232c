"""The break's lifecycle, in one place (docs/design.md section 17): the one writer of ``Break``
rows and their chained ``BreakEvent`` record.

A run's findings are matched to breaks by key in bulk (:func:`breaks_match`, called by the
writer of the run's mismatches, in its transaction): a new key opens a break, a known one is seen
again (its count and last seen move; that is no event: the run's ``Mismatch`` row linked to the
break is the record), a break no run finds any more is resolved by that run, and a resolved one
that comes back reopens with its history. People then move a break through four eyes
(:func:`break_acknowledge`, :func:`break_propose`, :func:`break_approve`, :func:`break_reject`,
:func:`break_comment`).

A key has one break for ever (a unique constraint). Matching for one account is serialised by a
PostgreSQL advisory lock held to the end of the run's transaction (SQLite's write transactions
are serial), so two runs finishing at once never open the same break twice; the constraint is the
backstop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, models, transaction
from django.utils import timezone

from audit.chain import chain_append
from brokerops.text import db_text

from .ageing import LIVE_STATES
from .break_rules import (
    APPROVE,
    EXPLAINABLE,
    PROPOSABLE,
    PROPOSE,
    TEXT_MAX,
    BreakRefused,
    checked_text,
    due_after,
    may_work,
    row_key,
)
from .models import Break, BreakEvent, Mismatch, ReconciliationRun

State = Break.State
Kind = BreakEvent.Kind
#: Still to be worked on: a run that no longer finds one of these resolves it.
LIVE = LIVE_STATES
#: Found again without coming back: live, or signed off and not cleared since.
STANDING = models.Q(state__in=LIVE) | models.Q(state=State.CLOSED, cleared_by_run__isnull=True)
_CHUNK = 1000
ACTOR = "reconciliation"


@dataclass(frozen=True)
class _Found:
    key: str
    row: Mismatch
    signal_ids: tuple[str, ...]


def breaks_match(
    *, run: ReconciliationRun, rows: Sequence[Mismatch], signal_ids: Sequence[Sequence[str]]
) -> None:
    """Match a run's mismatches (not stored yet) to breaks, setting each row's ``break_case``;
    open, see again, reopen and clear breaks. Must run inside the transaction that stores the
    rows. A dry run changes no break (its rows link to none)."""
    if run.dry_run:
        return
    _lock_account(run.account)
    now = timezone.now()
    keys = [row_key(run.account, row, ids) for row, ids in zip(rows, signal_ids, strict=True)]
    found: dict[str, _Found] = {}
    for key, row, ids in zip(keys, rows, signal_ids, strict=True):
        found.setdefault(key, _Found(key, row, tuple(sorted(ids))))
    # The account's standing breaks in one read without parameters (a run finds most of them
    # again); only the keys not among them are looked up, the new and those coming back.
    standing: dict[str, int] = dict(
        Break.objects.filter(STANDING, account=run.account).order_by().values_list("key", "pk")
    )
    others = _known([k for k in found if k not in standing])
    again = [standing[k] for k in found if k in standing]
    unfound = [pk for k, pk in standing.items() if k not in found]
    _seen_again(run, again, unfound, now)
    cleared = _clear(run, unfound, now)
    back = [others[k] for k in found if k in others]
    reopened = _reopen(run, back, found, now)
    opened = _open(run, [f for k, f in found.items() if k not in standing and k not in others], now)
    by_key = {k: standing[k] for k in found if k in standing}
    by_key.update((b.key, b.pk) for b in (*opened, *back))
    for key, row in zip(keys, rows, strict=True):
        row.break_case_id = by_key[key]  # two findings of one key in a run: the same break
    _events(
        [(b, Kind.OPENED, "", State.OPEN, f"opened by run #{run.pk}") for b in opened]
        + reopened
        + cleared,
        run=run,
        actor=ACTOR,
        now=now,
    )


def _lock_account(account: str) -> None:
    if connection.vendor == "postgresql":
        digest = hashlib.blake2b(f"brokerops:breaks:{account}".encode(), digest_size=8).digest()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest, "big", signed=True)]
            )


def _known(keys: list[str]) -> dict[str, Break]:
    known: dict[str, Break] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        for brk in Break.objects.filter(key__in=chunk).only("id", "key", "state"):
            known[brk.key] = brk
    return known


def _open(run: ReconciliationRun, items: list[_Found], now: datetime) -> list[Break]:
    breaks = [
        Break(
            account=run.account,
            key=item.key,
            kind=item.row.kind,
            severity=item.row.severity,
            symbol=item.row.symbol,
            signal_ids=list(item.signal_ids),
            client_order_id=item.row.client_order_id,
            first_seen_at=now,
            last_seen_at=now,
            opened_at=now,
            due_at=now + due_after(item.row.severity),
            first_run=run,
            last_run=run,
            detail=item.row.detail,
        )
        for item in items
    ]
    created = Break.objects.bulk_create(breaks, batch_size=_CHUNK)
    if created and created[0].pk is None:  # a backend that returns no ids: read them back
        ids = dict(Break.objects.filter(key__in=[b.key for b in created]).values_list("key", "pk"))
        for brk in created:
            brk.pk = ids[brk.key]
    return created


def _seen_again(
    run: ReconciliationRun, again: list[int], unfound: list[int], now: datetime
) -> None:
    """Count the run on every standing break it found. Runs alone move a break out of standing
    (under the account's lock), so "standing but not unfound" is the same set as ``again``:
    whichever of the two id lists is shorter goes to the database."""
    seen = {"last_seen_at": now, "last_run": run, "occurrences": models.F("occurrences") + 1}
    if not again:
        return
    if len(unfound) < len(again):
        mine = Break.objects.filter(STANDING, account=run.account)
        if unfound:
            mine = mine.exclude(pk__in=unfound)
        mine.update(**seen)
        return
    for start in range(0, len(again), _CHUNK):
        Break.objects.filter(pk__in=again[start : start + _CHUNK]).update(**seen)


def _reopen(
    run: ReconciliationRun, back: list[Break], found: dict[str, _Found], now: datetime
) -> list[tuple]:
    events = []
    for brk in back:
        row = found[brk.key].row
        Break.objects.filter(pk=brk.pk).update(
            state=State.OPEN,
            disposition="",
            reason="",
            proposed_by_username="",
            approved_by_username="",
            needs_review=False,
            closed_at=None,
            cleared_by_run=None,
            overdue_alerted_at=None,
            opened_at=now,
            due_at=now + due_after(row.severity),
            last_seen_at=now,
            last_run=run,
            occurrences=models.F("occurrences") + 1,
            detail=row.detail,
        )
        events.append((brk, Kind.REOPENED, brk.state, State.OPEN, f"found again by run #{run.pk}"))
    return events


def _clear(run: ReconciliationRun, unfound: list[int], now: datetime) -> list[tuple]:
    """Standing breaks the run did not find: live ones are resolved, signed-off ones remember
    the run (found again later, they reopen). Locked first: a person's action on one of them
    (a proposal approved meanwhile) is seen, not overwritten."""
    live, signed = [], []
    for start in range(0, len(unfound), _CHUNK):
        chunk = unfound[start : start + _CHUNK]
        for brk in Break.objects.select_for_update().filter(pk__in=chunk).only("id", "state"):
            (live if brk.state in LIVE else signed).append(brk)
    message = f"cleared by run #{run.pk}"
    for start in range(0, len(live), _CHUNK):
        Break.objects.filter(pk__in=[b.pk for b in live[start : start + _CHUNK]]).update(
            state=State.RESOLVED, cleared_by_run=run, closed_at=now
        )
    for start in range(0, len(signed), _CHUNK):
        Break.objects.filter(pk__in=[b.pk for b in signed[start : start + _CHUNK]]).update(
            cleared_by_run=run
        )
    return [(b, Kind.CLEARED, b.state, State.RESOLVED, message) for b in live] + [
        (b, Kind.CLEARED, State.CLOSED, State.CLOSED, message) for b in signed
    ]


def _events(
    changes: list[tuple],
    *,
    run: ReconciliationRun | None,
    actor: str,
    now: datetime,
    payload: dict | None = None,
) -> list[BreakEvent]:
    return chain_append(
        (
            BreakEvent(
                break_case_id=brk.pk,
                kind=kind,
                state_from=state_from,
                state_to=state_to,
                run=run,
                actor=actor[:150],
                message=db_text(message),
                payload=payload or {},
                created_at=now,
            )
            for brk, kind, state_from, state_to, message in changes
        ),
        batch_size=_CHUNK,
    )


def breaks_close_repaired(*, run: ReconciliationRun, mismatches: Sequence[Mismatch]) -> int:
    """Close the breaks whose finding the run repaired by forcing the signal to
    ``CLOSED_MANUAL`` (listed for compliance to review). Returns how many closed."""
    ids = sorted({m.break_case_id for m in mismatches if m.break_case_id is not None})
    if not ids:
        return 0
    now = timezone.now()
    with transaction.atomic():
        # Only what the events need: whole rows (detail, ids, texts) cost 0.3 s for 1,000.
        rows = Break.objects.select_for_update().filter(pk__in=ids, state__in=LIVE)
        closing = list(rows.only("id", "state"))
        Break.objects.filter(pk__in=[b.pk for b in closing]).update(
            state=State.CLOSED,
            disposition=Break.Disposition.REPAIRED,
            needs_review=True,
            closed_at=now,
        )
        message = f"run #{run.pk} moved the signal to CLOSED_MANUAL"
        _events(
            [(b, Kind.REPAIRED, b.state, State.CLOSED, message) for b in closing],
            run=run,
            actor=ACTOR,
            now=now,
        )
    return len(closing)


def breaks_close_explained(
    *, run: ReconciliationRun, explained: dict[str, str], activity_ids: dict[str, Sequence[str]]
) -> int:
    """Close the account's live position breaks on the symbols the account's activities fully
    explain (``explained``: symbol key -> in words), as ``explained``, each event naming the
    activities (docs/design.md section 18.4). The run is remembered as the one that cleared
    them: if the discrepancy comes back, the break reopens. Returns how many closed."""
    if not explained or run.dry_run:
        return 0
    now = timezone.now()
    with transaction.atomic():
        _lock_account(run.account)
        closing = list(
            Break.objects.select_for_update()
            .filter(
                account=run.account,
                state__in=LIVE,
                kind__in=EXPLAINABLE,
                symbol__in=list(explained),
            )
            .order_by("pk")
        )
        for brk in closing:
            Break.objects.filter(pk=brk.pk).update(
                state=State.CLOSED,
                disposition=Break.Disposition.EXPLAINED,
                reason=db_text(f"explained by run #{run.pk}: {explained[brk.symbol]}"[:TEXT_MAX]),
                cleared_by_run=run,
                closed_at=now,
            )
            _events(
                [
                    (
                        brk,
                        Kind.EXPLAINED,
                        brk.state,
                        State.CLOSED,
                        f"explained by run #{run.pk}: {explained[brk.symbol]}",
                    )
                ],
                run=run,
                actor=ACTOR,
                now=now,
                payload={"activities": list(activity_ids.get(brk.symbol, ()))},
            )
    return len(closing)


def breaks_mark_overdue(
    *, account: str, now: datetime, realert_s: float
) -> list[tuple[Break, bool]]:
    """Record that the account's live breaks past their due time are overdue (an ``overdue``
    event each, ``overdue_alerted_at`` set) and return them, each with True when it is the first
    time in its current episode (else a reminder): those never marked in their current episode,
    and those marked ``realert_s`` ago or longer (0: never again).
    Serialised with the account's runs (their lock): a break a run clears meanwhile, or that a
    person closed before, is not marked."""
    due = Break.objects.filter(state__in=LIVE, due_at__lte=now, account=account)
    again = models.Q(overdue_alerted_at__isnull=True)
    if realert_s > 0:
        again |= models.Q(overdue_alerted_at__lte=now - timedelta(seconds=realert_s))
    with transaction.atomic():
        _lock_account(account)
        marked = list(due.filter(again).select_for_update().order_by("pk"))
        changes, firsts = [], []
        for brk in marked:
            first = brk.overdue_alerted_at is None
            firsts.append(first)
            late = f"due {brk.due_at:%Y-%m-%d %H:%M} UTC"
            message = f"overdue ({late})" if first else f"still overdue ({late}): alerted again"
            changes.append((brk, Kind.OVERDUE, brk.state, brk.state, message))
        for start in range(0, len(marked), _CHUNK):
            chunk = [b.pk for b in marked[start : start + _CHUNK]]
            Break.objects.filter(pk__in=chunk).update(overdue_alerted_at=now)
        _events(changes, run=None, actor=ACTOR, now=now)
    return list(zip(marked, firsts, strict=True))


# People's actions (four eyes). Each locks the break's row, checks its state and the person's
# permission, changes the row and appends its event in one transaction: of a proposal and an
# approval racing on one break, the second sees the first's outcome.


def _change(
    break_id: int,
    user,
    *,
    kind: str,
    allowed: frozenset[str] | None,
    message: str,
    payload: dict | None = None,
    **fields,
) -> Break:
    with transaction.atomic():
        brk = Break.objects.select_for_update().filter(pk=break_id).first()
        if brk is None:
            raise BreakRefused(f"break #{break_id} does not exist")
        if allowed is not None and brk.state not in allowed:
            raise BreakRefused(
                f"break #{brk.pk} is {brk.get_state_display().lower()}: it cannot be {kind} now"
            )
        if kind == Kind.APPROVED and brk.proposed_by_username == user.get_username():
            raise BreakRefused("four eyes: the approver cannot be the person who proposed it")
        state_from = brk.state
        for name, value in fields.items():
            setattr(brk, name, value)
        if fields:  # only the fields this action changes: a run's counts are not overwritten
            brk.save(update_fields=list(fields))
        _events(
            [(brk, kind, state_from, brk.state, message)],
            run=None,
            actor=user.get_username(),
            now=timezone.now(),
            payload=payload,
        )
    return brk


def break_acknowledge(*, break_id: int, user, comment: str, owner=None) -> Break:
    """Take a break (or give it to ``owner``), saying why: ``open`` -> ``acknowledged``."""
    may_work(user)
    owner = owner or user
    text = checked_text(comment, "A comment")
    return _change(
        break_id,
        user,
        kind=Kind.ACKNOWLEDGED,
        allowed=frozenset({State.OPEN, State.ACKNOWLEDGED}),
        message=text,
        payload={"owner": owner.get_username()},
        state=State.ACKNOWLEDGED,
        owner=owner,
        owner_username=owner.get_username(),
    )


def break_propose(*, break_id: int, user, disposition: str, reason: str) -> Break:
    """Propose how the break ends, with a reason: ``acknowledged`` -> ``proposed``."""
    if not user.has_perm(PROPOSE):
        raise BreakRefused("proposing a disposition needs the propose_break permission")
    if disposition not in PROPOSABLE:
        choices = ", ".join(d.value for d in PROPOSABLE)
        raise BreakRefused(f"{disposition!r} is not a disposition (one of {choices})")
    text = checked_text(reason, "A reason")
    return _change(
        break_id,
        user,
        kind=Kind.PROPOSED,
        allowed=frozenset({State.ACKNOWLEDGED}),
        message=text,
        payload={"disposition": disposition},
        state=State.PROPOSED,
        disposition=disposition,
        reason=text,
        proposed_by_username=user.get_username(),
    )


def break_approve(*, break_id: int, user, comment: str = "") -> Break:
    """A second person signs the proposal off: ``proposed`` -> ``closed``. Never the proposer,
    whatever their permissions (a superuser included)."""
    if not user.has_perm(APPROVE):
        raise BreakRefused("approving needs the approve_break permission")
    return _change(
        break_id,
        user,
        kind=Kind.APPROVED,
        allowed=frozenset({State.PROPOSED}),
        message=checked_text(comment, "A comment", required=False),
        state=State.CLOSED,
        approved_by_username=user.get_username(),
        closed_at=timezone.now(),
    )


def break_reject(*, break_id: int, user, reason: str) -> Break:
    """Send a proposal back, saying why: ``proposed`` -> ``open`` (its owner kept)."""
    if not user.has_perm(APPROVE):
        raise BreakRefused("rejecting needs the approve_break permission")
    text = checked_text(reason, "A reason")
    return _change(
        break_id,
        user,
        kind=Kind.REJECTED,
        allowed=frozenset({State.PROPOSED}),
        message=text,
        state=State.OPEN,
        disposition="",
        reason="",
        proposed_by_username="",
    )


def break_review(*, break_id: int, user, comment: str = "") -> Break:
    """Compliance has looked at a break a run repaired: it leaves the "to review" list."""
    if not user.has_perm(APPROVE):
        raise BreakRefused("reviewing a repair needs the approve_break permission")
    brk = Break.objects.filter(pk=break_id).only("needs_review").first()
    if brk is not None and not brk.needs_review:
        raise BreakRefused(f"break #{break_id} has no repair to review")
    return _change(
        break_id,
        user,
        kind=Kind.REVIEWED,
        allowed=frozenset({State.CLOSED}),
        message=checked_text(comment, "A comment", required=False),
        needs_review=False,
    )


def break_comment(*, break_id: int, user, text: str) -> Break:
    """A comment on a break, in any state: an event like every other change."""
    may_work(user)
    return _change(
        break_id, user, kind=Kind.COMMENTED, allowed=None, message=checked_text(text, "A comment")
    )
