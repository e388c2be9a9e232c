"""What the account's activities explain (docs/design.md section 18.4). Pure: no I/O.

Given the ACTIVE signals (each with the point since which activities apply to it: its fill),
the holdings and the account's stored activities, work out what the corporate actions and posted
coin fees since each fill do to the quantity each signal expects:
- a split (a ``SPLIT``/``SSP`` ``REMOVE``/``ADD`` pair on one symbol) multiplies it by the pair's
  ratio; a merger or name change (an ``MA``/``NC`` pair) moves it to the ``ADD``'s symbol, times
  the pair's ratio; a posted ``CFEE`` takes the fee from the one long signal on the coin;
- a spin-off (``SPIN``/``SSO`` ``ADD``) adds a holding no signal follows: the holding is explained
  while it equals the spin-offs posted on it.
Moves are applied only when they explain the difference fully: every symbol they touch is then
held exactly as expected (a coin whose fee is not posted yet keeps the fee tolerance). Otherwise
nothing moves and the findings on those symbols carry the explained part.

Bad input is recorded (:class:`Note`), never followed on a guess: a pair with one side posted, a
split on a symbol held long and short by different signals, an activity on a symbol no signal
knows, a quantity finer than 1e-9 (a signal cannot hold it), a type not followed (unknown,
``JNLS``, ``REORG``), a coin fee with several signals on the coin. An activity a signal has
followed (``Signal.followed_activities``) is never applied to it again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from brokerops.alpaca.types import Activity
from brokerops.intent.schema import Signal, SignalStatus
from brokerops.symbols import symbol_key

from .diff import Finding, ReconciliationErrors

STEP = Decimal("1e-9")  # the finest quantity a signal holds (docs/design.md section 3)
_ZERO = Decimal(0)
#: Families that move no holding of a signal (fills are the signal's own order; cash kinds).
_IGNORED = frozenset({"FILL", "DIV", "CASH", "FEE"})
_PAIRED = frozenset({"SPLIT", "MA", "NC"})
#: Findings an explanation can close or annotate.
POSITION_KINDS = frozenset(
    {
        ReconciliationErrors.QTY_MISMATCH,
        ReconciliationErrors.UNTRACKED_POSITION,
        ReconciliationErrors.ORPHAN_POSITION,
    }
)


@dataclass(frozen=True)
class Booked:
    """A stored activity: its primary key (booking order in the account) and its record."""

    pk: int
    activity: Activity


@dataclass(frozen=True)
class Since:
    """Where activities start applying to a signal: after its fill's activity (``fill_pk``),
    else from ``time`` (the signal's creation); neither known: none apply."""

    fill_pk: int | None = None
    time: datetime | None = None

    def covers(self, booked: Booked) -> bool:
        if self.fill_pk is not None:
            return booked.pk > self.fill_pk
        when = booked.activity.time
        return self.time is not None and when is not None and when >= self.time


@dataclass(frozen=True)
class Note:
    """An activity recorded and not followed, and why."""

    activity_id: str
    activity_type: str
    symbol: str
    reason: str

    def line(self) -> str:
        symbol = self.symbol or "no symbol"
        return f"{self.activity_type} {self.activity_id} ({symbol}): {self.reason}"


@dataclass(frozen=True)
class Follow:
    """A signal's expected holding moved by activities (to write through the intent door)."""

    signal_id: str
    symbol_from: str
    symbol_to: str  # as the signal will name it
    key_from: str
    key_to: str
    qty_from: Decimal  # unsigned, as the signal's filled_qty
    qty_to: Decimal
    activity_ids: tuple[str, ...]
    steps: tuple[str, ...]  # each activity's move, in words

    def reason(self) -> str:
        return (
            f"followed {'; '.join(self.steps)}: {self.qty_from} {self.symbol_from} -> "
            f"{self.qty_to} {self.symbol_to}"
        )


@dataclass
class Explanation:
    follows: list[Follow] = field(default_factory=list)
    #: symbol key -> what fully explains its holding (its live position breaks close so)
    explained: dict[str, str] = field(default_factory=dict)
    #: symbol key -> the explained part, or what is recorded against it (the finding stays)
    partly: dict[str, str] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    #: coin symbol keys whose every long signal follows its posted fee: no tolerance there
    fee_posted: frozenset[str] = frozenset()
    #: activity ids named by the explanation of each explained key
    activity_ids: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "followed": [f"signal {f.signal_id!r}: {f.reason()}" for f in self.follows],
            "explained": dict(sorted(self.explained.items())),
            "partly": dict(sorted(self.partly.items())),
            "not_followed": [n.line() for n in self.notes],
        }


@dataclass(frozen=True)
class _Move:
    family: str
    remove: Booked
    add: Booked

    @property
    def ratio(self) -> Decimal:
        return self.add.activity.qty / -self.remove.activity.qty

    def words(self) -> str:
        a, r = self.add.activity, self.remove.activity
        what = f"{r.activity_type} {r.symbol}"
        if self.family != "SPLIT":
            what += f" -> {a.symbol}"
        return f"{what} {_ratio(self.ratio)} (activities {r.id}, {a.id})"


def _plain(qty: Decimal) -> Decimal:
    """``40`` for ``40.000000000``, never ``4E+1``."""
    return Decimal(format(qty.normalize(), "f"))


def _ratio(ratio: Decimal) -> str:
    """``4:1`` for a split multiplying by 4, ``1:4`` for a reverse one."""
    if ratio >= 1:
        return f"{format(ratio.normalize(), 'f')}:1"
    inverse = (1 / ratio).normalize()
    return f"1:{format(inverse, 'f')}" if inverse == inverse.to_integral() else f"x{ratio}"


@dataclass
class _State:
    """A signal's expected holding as the activities move it."""

    signal: Signal
    since: Since
    key: str
    symbol: str
    qty: Decimal  # signed
    new_ids: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)

    def open_to(self, booked: Booked) -> bool:
        followed = self.signal.followed_activities
        return self.since.covers(booked) and booked.activity.id not in followed


def explain(
    *,
    signals: Sequence[tuple[Signal, Since]],
    held: Mapping[str, Decimal],
    activities: Sequence[Booked],
    crypto: Iterable[str] = (),
    fee_tolerance_bps: Decimal = _ZERO,
) -> Explanation:
    """What ``activities`` (booking order) explain of ``held`` (symbol key -> signed quantity)
    against the ACTIVE ``signals`` (see the module docstring)."""
    out = Explanation()
    states = [
        _State(s, since, s.symbol_key, s.symbol, s.signed_qty)
        for s, since in signals
        if s.status is SignalStatus.ACTIVE and s.signed_qty is not None
    ]
    known = {s.key for s in states} | {i for s in states for i in s.signal.followed_activities}
    spun: dict[str, Decimal] = {}
    spun_ids: dict[str, list[str]] = {}
    fee_ids: set[str] = set()
    for event in _events(activities, out.notes):
        if isinstance(event, _Move):
            _apply_move(event, states, known, out.notes)
        elif event.activity.family == "SPIN":
            key = event.activity.symbol_key
            spun[key] = spun.get(key, _ZERO) + event.activity.qty
            spun_ids.setdefault(key, []).append(event.activity.id)
        else:
            fee_ids.add(event.activity.id)
            _apply_fee(event, states, known, out.notes)
    _settle(out, states, held, set(crypto), fee_tolerance_bps, fee_ids)
    _settle_spun(out, states, held, spun, spun_ids)
    for note in out.notes:
        if note.symbol:
            out.partly.setdefault(symbol_key(note.symbol), f"not followed: {note.line()}")
    return out


def _events(activities: Sequence[Booked], notes: list[Note]) -> list[_Move | Booked]:
    """The activities to follow, in booking order: pairs joined, the rest noted."""
    events: list[_Move | Booked] = []
    pending: dict[str, Booked] = {}
    for booked in activities:
        a = booked.activity
        family = a.family
        if family in _IGNORED:
            continue
        note = _bad(a)
        if note:
            notes.append(Note(a.id, a.activity_type, a.symbol or "", note))
            continue
        if family in _PAIRED:
            leg = a.leg
            if leg == "REMOVE":
                if family in pending:
                    _one_side(pending.pop(family), notes)
                pending[family] = booked
                continue
            start = pending.pop(family, None)
            same = start is not None and (
                family != "SPLIT" or start.activity.symbol_key == a.symbol_key
            )
            if not same:
                if start is not None:
                    _one_side(start, notes)
                _one_side(booked, notes)
                continue
            events.append(_Move(family, start, booked))
        elif family in ("SPIN", "CFEE"):
            events.append(booked)
    for start in pending.values():
        _one_side(start, notes)
    return events


def _bad(a: Activity) -> str:
    """Why an activity cannot be followed as it is, or "" when it can."""
    if a.family not in _PAIRED | {"SPIN", "CFEE"}:
        return f"type {a.activity_type!r} is not followed: an operator decides"
    if not a.symbol:
        return "names no symbol"
    if a.qty is None or not a.qty:
        return "carries no quantity"
    if a.qty % STEP:
        return f"quantity {a.qty} is finer than 1e-9: a signal cannot hold it"
    if a.family == "CFEE" and a.qty > 0:
        return "a coin fee must be negative"
    if a.family == "SPIN" and a.qty < 0:
        return "a spin-off must add"
    return ""


def _one_side(booked: Booked, notes: list[Note]) -> None:
    a = booked.activity
    notes.append(
        Note(a.id, a.activity_type, a.symbol or "", f"only its {a.leg} side is posted yet")
    )


def _apply_move(move: _Move, states: list[_State], known: set[str], notes: list[Note]) -> None:
    remove = move.remove.activity
    key = remove.symbol_key
    holders = [s for s in states if s.key == key and s.open_to(move.remove)]
    if not holders:
        if key not in known and remove.id not in known:
            notes.append(Note(remove.id, remove.activity_type, remove.symbol, "no signal knows it"))
        return
    if len({s.qty > 0 for s in holders}) > 1:
        why = "the symbol is held long and short by different signals: not followed"
        notes.append(Note(remove.id, remove.activity_type, remove.symbol, why))
        return
    ratio, add = move.ratio, move.add.activity
    for state in holders:
        state.qty = _plain((state.qty * ratio).quantize(STEP, rounding=ROUND_DOWN))
        if add.symbol_key != state.key:
            state.key, state.symbol = add.symbol_key, add.symbol
        state.new_ids += [remove.id, add.id]
        state.steps.append(move.words())
    known.add(add.symbol_key)


def _apply_fee(booked: Booked, states: list[_State], known: set[str], notes: list[Note]) -> None:
    fee = booked.activity
    holders = [s for s in states if s.key == fee.symbol_key and s.open_to(booked) and s.qty > 0]
    if len(holders) == 1:
        state = holders[0]
        state.qty += fee.qty
        state.new_ids.append(fee.id)
        state.steps.append(f"CFEE {fee.qty} {fee.symbol} (activity {fee.id})")
        return
    if any(fee.id in s.signal.followed_activities for s in states):
        return
    if holders:
        why = f"{len(holders)} signals hold the coin: whose buy it was is not known; "
        why += "the fee tolerance stays"
    elif fee.symbol_key in known:
        return  # before every fill on the coin: not ours to follow
    else:
        why = "no signal knows it"
    notes.append(Note(fee.id, fee.activity_type, fee.symbol, why))


def _settle(
    out: Explanation,
    states: list[_State],
    held: Mapping[str, Decimal],
    crypto: set[str],
    tolerance_bps: Decimal,
    fee_ids: set[str],
) -> None:
    """Keep the moves whose symbols they touch all end as held; the rest are partly explained."""
    expected: dict[str, Decimal] = {}
    for state in states:
        expected[state.key] = expected.get(state.key, _ZERO) + state.qty
    posted = _fee_posted(states, fee_ids)
    out.fee_posted = frozenset(posted)
    moved = [s for s in states if s.new_ids]
    touched = {s.signal.symbol_key for s in moved} | {s.key for s in moved}

    def fits(key: str) -> bool:
        want, have = expected.get(key, _ZERO), held.get(key, _ZERO)
        if want == have:
            return True
        bps = tolerance_bps if key in crypto and key not in posted else _ZERO
        return bps > 0 and 0 < have <= want and want - have <= want * bps / 10_000

    fitting = {key for key in touched if fits(key)}
    for state in moved:
        s = state.signal
        words = "; ".join(state.steps)
        if s.symbol_key in fitting and state.key in fitting:
            out.follows.append(
                Follow(
                    signal_id=s.id,
                    symbol_from=s.symbol,
                    symbol_to=state.symbol if state.key != s.symbol_key else s.symbol,
                    key_from=s.symbol_key,
                    key_to=state.key,
                    qty_from=abs(s.signed_qty),
                    qty_to=abs(state.qty),
                    activity_ids=tuple(state.new_ids),
                    steps=tuple(state.steps),
                )
            )
            for key in {s.symbol_key, state.key}:
                out.explained[key] = words
                out.activity_ids[key] = (*out.activity_ids.get(key, ()), *state.new_ids)
        else:
            for key in {s.symbol_key, state.key} - fitting:
                out.partly[key] = (
                    f"activities explain part of it: {words}; expected after them "
                    f"{expected.get(key, _ZERO)}, held {held.get(key, _ZERO)}"
                )


def _fee_posted(states: list[_State], fee_ids: set[str]) -> set[str]:
    """Coins whose every long signal follows a posted fee (now or before)."""
    by_key: dict[str, list[bool]] = {}
    for state in states:
        if state.qty > 0:
            had = fee_ids & ({*state.signal.followed_activities, *state.new_ids})
            by_key.setdefault(state.key, []).append(bool(had))
    return {key for key, flags in by_key.items() if all(flags)}


def _settle_spun(
    out: Explanation,
    states: list[_State],
    held: Mapping[str, Decimal],
    spun: dict[str, Decimal],
    spun_ids: dict[str, list[str]],
) -> None:
    for key, qty in spun.items():
        ours = sum((s.qty for s in states if s.key == key), _ZERO)
        ids = ", ".join(spun_ids[key])
        words = f"spin-off adds {qty} (activities {ids})"
        if held.get(key, _ZERO) == ours + qty:
            out.explained[key] = words
            out.activity_ids[key] = tuple(spun_ids[key])
        elif held.get(key, _ZERO):
            out.partly[key] = f"{words}; held {held.get(key, _ZERO)}"


def followed_signal(signal: Signal, follow: Follow) -> Signal:
    """``signal`` as the follow leaves it (what the diff compares when the store is not asked
    again: a dry run)."""
    return dataclasses.replace(
        signal,
        symbol=follow.symbol_to,
        symbol_key=follow.key_to,
        filled_qty=follow.qty_to,
        followed_activities=(*signal.followed_activities, *follow.activity_ids),
    )


def annotate(findings: Sequence[Finding], explanation: Explanation) -> list[Finding]:
    """The findings as the explanation leaves them: an untracked holding a spin-off explains is
    dropped; a finding on a symbol partly explained (or with an activity not followed) keeps its
    kind, its detail saying the explained part."""
    out: list[Finding] = []
    for finding in findings:
        if finding.kind not in POSITION_KINDS:
            out.append(finding)
            continue
        if (
            finding.kind is ReconciliationErrors.UNTRACKED_POSITION
            and finding.symbol in explanation.explained
        ):
            continue
        part = explanation.partly.get(finding.symbol)
        if part:
            finding = dataclasses.replace(
                finding, detail=f"{finding.detail}; {part}", explained=part
            )
        out.append(finding)
    return out
