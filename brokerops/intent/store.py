"""The signal store: the interface every caller uses and its result types.

Callers get a store with `get_signal_store()` (`brokerops.intent.factory`) and never see
Firestore or the ORM. Two
implementations behave the same (one test suite runs against both):

- `FirestoreSignalStore` (`brokerops.intent.firestore`): production, and the Firestore emulator;
- `LocalSignalStore` (`brokerops.intent.local`): documents kept as raw JSON in the Django database,
  the embedded default.

Document ids are Firestore's: any string of 1 to 1,500 bytes of UTF-8 (a single space, NUL,
"#?&%" included) except those containing "/", "." and "..", and the reserved ``__.+__``
(`check_document_id`). Both stores accept exactly those and refuse the rest with `ValueError`
before anything is written. An id is data, never a path.

Versions: every document read from a store (`Signal`, `InvalidSignal`) carries its opaque
`version` (Firestore: the update time, ISO 8601 with nanoseconds; local: the revision). It changes
on every write; compare versions only for equality.

Concurrency contract: every status change is conditional. A store reads the document, checks that
its status is still the one the caller expects, and writes only if the document has not changed
since that read (Firestore: an update-time precondition; local: a revision check in the UPDATE's
WHERE clause). When the document did change, the store reads it again: if the status is still the
expected one (another field changed) the change is retried on the fresh copy, otherwise the result
is `STATUS_MOVED` and the other writer's change stands untouched.

A decision holds only for the document it was made on (docs/design.md section 4): a `Transition`
with `expected_version` (the `version` of the document the caller decided on) is applied only to
that very version. If the status moved the result is `STATUS_MOVED`; if the status is still the
expected one but the document changed in any other way (before the store's read or between its
read and its write) the result is `CHANGED` and nothing is retried: the caller re-evaluates its
decision on `result.current` (the fresh document, with its version) and retries with
``current.version``, or leaves it to the next run.

A document that does not parse is never modified, with one exception (docs/design.md section 3): a
`Transition(..., allow_invalid=True)` applies to a document that does not parse when its raw
`status` string is exactly the expected status (a PENDING document whose order cannot be built
is moved to REJECTED); it then writes only `status`, `status_reason` and `updated_at`, never
`fields`. A document whose status cannot be read stays untouched (`INVALID`).

Every result that was not applied carries `current`, the document as the store last read it
(None when there is none: `NOT_FOUND`).

Errors: outcomes of a transition (moved, changed, not found, invalid) are results, never
exceptions.
`SignalStoreUnavailable` means the backend could not be reached or timed out (retry later; a
write whose outcome is unknown shows up as `STATUS_MOVED` with ``actual_status == new_status``
on the retry); `SignalStoreError` is any other backend failure (configuration, permissions).
Programming errors (unknown field names, wrong argument types) raise `ValueError`/`TypeError`
before anything is written.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import itertools
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from brokerops.accounts import Accounts, configured
from brokerops.fields import CLIENT_ORDER_ID_MAX
from brokerops.intent.schema import InvalidSignal, Signal, SignalStatus, parse_signal
from brokerops.intent.signal_model import DOCUMENT_ID_MAX_BYTES, TRANSITION_WRITABLE_FIELDS

#: How often a transition is retried when its document keeps changing under it (other fields).
MAX_WRITE_ATTEMPTS = 5


class SignalStoreError(Exception):
    """The signal store failed for a reason that needs a person: configuration, permissions,
    a rejected request. Retrying will not help."""

    def operator_line(self) -> str:
        """What failed, for an operator's terminal (:mod:`brokerops.commands`)."""
        return f"the signal store is unavailable: {self}"


class SignalStoreUnavailable(SignalStoreError):
    """The signal store could not be reached, timed out, or is overloaded. Usually resolves
    itself; retry the whole operation later (transitions are safe to retry)."""


class TransitionOutcome(enum.StrEnum):
    APPLIED = "APPLIED"
    """The status (and fields) were written."""
    STATUS_MOVED = "STATUS_MOVED"
    """Skipped: the stored status is no longer the expected one (see `actual_status`)."""
    CHANGED = "CHANGED"
    """Skipped: the document changed since it was read (its version is not `expected_version`;
    the status is still the expected one). Re-evaluate on `current` and retry with its version."""
    NOT_FOUND = "NOT_FOUND"
    """Skipped: no document with this id (deleted since it was read)."""
    INVALID = "INVALID"
    """Skipped: the stored document does not parse; it was not modified (see `detail`)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Transition:
    """A requested status change. `fields` may only name `TRANSITION_WRITABLE_FIELDS`.

    `expected_version`: apply only to this version of the document (a `Signal.version` or
    `InvalidSignal.version`), else `CHANGED`; None: the status alone is checked.
    `allow_invalid`: also apply to a document that does not parse when its raw status is
    `expected_status`, writing only status, status_reason and updated_at (never `fields`).
    """

    signal_id: str
    expected_status: SignalStatus
    new_status: SignalStatus
    reason: str
    fields: Mapping[str, Any] | None = None
    expected_version: str | None = None
    allow_invalid: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class TransitionResult:
    """What happened to one transition.

    `reason` is the status_reason that was (or would have been) written; `actual_status` is the
    stored status after the attempt (`new_status` when applied; the raw string when the document
    is invalid; None when not found); `detail` explains a skip in words; `current` is the
    document as last read by the store, with its version, for every outcome but `APPLIED` and
    `NOT_FOUND` (where it is None).
    """

    signal_id: str
    outcome: TransitionOutcome
    expected_status: SignalStatus
    new_status: SignalStatus
    actual_status: SignalStatus | str | None
    reason: str
    detail: str = ""
    current: Signal | InvalidSignal | None = None

    @property
    def applied(self) -> bool:
        return self.outcome is TransitionOutcome.APPLIED


@dataclasses.dataclass(slots=True)
class SignalRead:
    """The result of a bulk read, ordered by document id: what parsed and what did not."""

    signals: list[Signal]
    invalid: list[InvalidSignal]

    def __len__(self) -> int:
        return len(self.signals) + len(self.invalid)


@dataclasses.dataclass(frozen=True)
class AccountScope:
    """The signals one account's work reads (docs/design.md section 16): those naming it, those
    naming no account when it is the default, and (for the account that owns unowned rows,
    `Accounts.rows_owner`) every signal whose account is unknown, as an `InvalidSignal` saying
    so: a signal naming an unconfigured account is reported once, never sent anywhere."""

    name: str
    accounts: Accounts

    @classmethod
    def of(cls, name: str) -> AccountScope:
        """The scope of the configured account ``name`` (KeyError for an unknown one)."""
        accounts = configured()
        accounts.get(name)
        return cls(name, accounts)

    def owner(self, item: Signal | InvalidSignal) -> str | None:
        """The configured account ``item`` belongs to; None when it names an unknown one (or
        none, without a default account)."""
        named = item.account if isinstance(item, Signal) else item.raw_account
        return self.accounts.owner(named)

    def unowned_reason(self, item: Signal | InvalidSignal) -> str:
        named = item.account if isinstance(item, Signal) else item.raw_account
        if named:
            return (
                f"account {named!r} is not configured (accounts: {', '.join(self.accounts.names)})"
            )
        return "names no account and there is no default account"

    def take(self, item: Signal | InvalidSignal) -> Signal | InvalidSignal | None:
        """``item`` if it is this account's, an `InvalidSignal` if it is nobody's and this account
        reports those, else None."""
        owner = self.owner(item)
        if owner == self.name:
            return item
        if owner is not None or self.name != self.accounts.rows_owner:
            return None
        reason = self.unowned_reason(item)
        if isinstance(item, InvalidSignal):
            return dataclasses.replace(item, reasons=(*item.reasons, reason))
        return InvalidSignal(
            id=item.id, reasons=(reason,), raw=item.as_json_dict(), version=item.version
        )

    def select(self, read: SignalRead) -> SignalRead:
        """The part of ``read`` this account reads, in the same order."""
        signals: list[Signal] = []
        invalid: list[InvalidSignal] = []
        for item in (*read.signals, *read.invalid):
            taken = self.take(item)
            if taken is not None:
                (signals if isinstance(taken, Signal) else invalid).append(taken)
        return sort_read(signals, invalid)


class SignalStore(abc.ABC):
    """Read and conditionally change signal documents. See the module docstring."""

    @abc.abstractmethod
    def read(
        self, *, statuses: Collection[SignalStatus], include_unknown_status: bool = False
    ) -> SignalRead:
        """Every document whose stored `status` is one of `statuses`, in one bulk read.

        Documents with one of those statuses that do not parse otherwise come back in
        `.invalid`. With `include_unknown_status`, documents whose `status` is present but not a
        known status (a typo, a number, a list) are added to `.invalid` too (Firestore: the
        query becomes ``status not-in`` the statuses not asked for). Documents with no `status`
        at all (missing or null) cannot be found by an indexed query in Firestore, so neither
        store returns them here: use `read_all()` (a full scan) for those.
        """

    def read_for(
        self,
        scope: AccountScope,
        *,
        statuses: Collection[SignalStatus],
        include_unknown_status: bool = False,
    ) -> SignalRead:
        """`read`, kept to the signals of one account (:meth:`AccountScope.select`)."""
        return scope.select(
            self.read(statuses=statuses, include_unknown_status=include_unknown_status)
        )

    @abc.abstractmethod
    def read_all(self) -> SignalRead:
        """Every document in the collection (a full scan: for audits, listings and tests)."""

    @abc.abstractmethod
    def get(self, signal_id: str) -> Signal | InvalidSignal | None:
        """One document, parsed (with its version); None when it does not exist."""

    def get_many(self, signal_ids: Sequence[str]) -> dict[str, Signal | InvalidSignal | None]:
        """Many documents at once (one round trip where the backend allows), parsed with their
        versions; every id is a key, None for a document that does not exist."""
        return {signal_id: self.get(signal_id) for signal_id in signal_ids}

    def transition(
        self,
        *,
        signal_id: str,
        expected_status: SignalStatus,
        new_status: SignalStatus,
        reason: str,
        fields: Mapping[str, Any] | None = None,
        expected_version: str | None = None,
        allow_invalid: bool = False,
    ) -> TransitionResult:
        """Set `status` to `new_status` only if it is still `expected_status` (and, with
        `expected_version`, only if the document is still that version).

        Also sets `status_reason` to `reason`, stamps `updated_at` with the server's clock and
        writes `fields` (only `TRANSITION_WRITABLE_FIELDS`). A document that does not parse is
        never modified, unless `allow_invalid` (see `Transition`). Returns the outcome; raises
        only for infrastructure failures.
        """
        return self.transition_many(
            [
                Transition(
                    signal_id,
                    expected_status,
                    new_status,
                    reason,
                    fields,
                    expected_version=expected_version,
                    allow_invalid=allow_invalid,
                )
            ]
        )[0]

    @abc.abstractmethod
    def transition_many(self, transitions: Sequence[Transition]) -> list[TransitionResult]:
        """Apply many transitions with bulk reads and batched writes; one result per transition,
        in order. Each transition succeeds or is skipped on its own: one moved signal does not
        stop the others. Signal ids must be unique within one call (`ValueError` otherwise).
        If it raises, some transitions may have been applied: re-run it (applied ones then come
        back `STATUS_MOVED` with ``actual_status == new_status``)."""

    @abc.abstractmethod
    def put_documents(self, docs: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Write raw documents (created or replaced whole, valid or not), in batches; returns the
        count. Values must be JSON-like; `Decimal` is stored as a string and `datetime` as a
        timestamp. Nothing is stamped or validated: this is for loaders and tests."""

    @abc.abstractmethod
    def delete_all(self) -> int:
        """Delete every document in the collection; returns how many (tests and demos only)."""


# --- helpers shared by the implementations ------------------------------------------------------


def check_document_id(doc_id: object) -> str:
    """Return `doc_id` if Firestore accepts it as a document id, else raise `ValueError`.

    Firestore's rules as its emulator enforces them (each is checked in test_intent_ids.py):
    a non-empty string of at most 1,500 bytes of UTF-8 (a lone surrogate is not UTF-8), without
    "/", neither "." nor "..", and not reserved: ``__.+__``, with "." matching newlines too.
    Firestore's documentation writes the reserved pattern ``__.*__``, but the emulator accepts
    "____" (nothing between the underscores), so it is accepted here: this check must never
    refuse an id that can exist in the store, or one such document would stop every transition
    batch it is in. A single space, NUL, "#?&%", "__", "___" and "____" are ordinary ids.
    """
    if not isinstance(doc_id, str) or not doc_id:
        raise ValueError(f"document id must be a non-empty string, not {doc_id!r}")
    try:
        size = len(doc_id.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValueError(f"document id {doc_id[:40]!r} is not valid UTF-8: {exc.reason}") from exc
    if size > DOCUMENT_ID_MAX_BYTES:
        raise ValueError(
            f"document id is {size} bytes of UTF-8, longer than {DOCUMENT_ID_MAX_BYTES}"
        )
    reserved = len(doc_id) >= 5 and doc_id.startswith("__") and doc_id.endswith("__")
    if "/" in doc_id or doc_id in {".", ".."} or reserved:
        raise ValueError(f"document id {doc_id[:40]!r} is not allowed by Firestore")
    return doc_id


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """`items` in lists of at most `size`, taken as they are needed."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def checked_documents(
    docs: Iterable[tuple[str, Mapping[str, Any]]],
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The documents of `put_documents`, each checked as it is taken: a valid id
    (`check_document_id`), given once, and a mapping."""
    seen: set[str] = set()
    for doc_id, data in docs:
        check_document_id(doc_id)
        if doc_id in seen:
            raise ValueError(f"document {doc_id!r} given twice")
        seen.add(doc_id)
        if not isinstance(data, Mapping):
            raise TypeError(f"document {doc_id!r} must be a mapping")
        yield doc_id, data


def plain_value(value: Any) -> Any:
    """Decimal -> str, recursively through lists and maps; other values unchanged."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_value(v) for v in value]
    return value


def validate_transitions(transitions: Sequence[Transition]) -> list[Transition]:
    """Check arguments before anything is written; return them with statuses as enums."""
    seen: set[str] = set()
    checked: list[Transition] = []
    for t in transitions:
        if not isinstance(t, Transition):
            raise TypeError(f"expected Transition, not {type(t).__name__}")
        check_document_id(t.signal_id)
        if t.signal_id in seen:
            raise ValueError(f"signal {t.signal_id!r} appears twice in one transition_many call")
        seen.add(t.signal_id)
        expected, new = SignalStatus(t.expected_status), SignalStatus(t.new_status)
        if not isinstance(t.reason, str):
            raise TypeError(f"reason must be a string, not {type(t.reason).__name__}")
        if t.expected_version is not None and not isinstance(t.expected_version, str):
            kind = type(t.expected_version).__name__
            raise TypeError(f"expected_version must be a string or None, not {kind}")
        if not isinstance(t.allow_invalid, bool):
            raise TypeError(f"allow_invalid must be a bool, not {type(t.allow_invalid).__name__}")
        fields = dict(t.fields or {})
        unknown = set(fields) - TRANSITION_WRITABLE_FIELDS
        if unknown:
            raise ValueError(
                f"fields {sorted(unknown)} cannot be set by a transition "
                f"(writable: {sorted(TRANSITION_WRITABLE_FIELDS)})"
            )
        for name, value in fields.items():
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string or None, not {type(value).__name__}")
        coid = fields.get("client_order_id")
        if coid is not None and len(coid) > CLIENT_ORDER_ID_MAX:
            raise ValueError(f"client_order_id longer than {CLIENT_ORDER_ID_MAX}")
        checked.append(
            dataclasses.replace(t, expected_status=expected, new_status=new, fields=fields)
        )
    return checked


_KNOWN_STATUSES = frozenset(s.value for s in SignalStatus)


@dataclasses.dataclass(frozen=True, slots=True)
class PlannedWrite:
    """A transition that goes ahead on the document as read: what `classify` returns when the
    write should be attempted. `with_fields` is False for a document that does not parse
    (`allow_invalid`): only status, status_reason and updated_at are written then."""

    transition: Transition
    with_fields: bool

    def payload(self, updated_at: Any) -> dict[str, Any]:
        """The fields to write (`updated_at` is the store's server-time value)."""
        t = self.transition
        return {
            **((t.fields or {}) if self.with_fields else {}),
            "status": t.new_status.value,
            "status_reason": t.reason,
            "updated_at": updated_at,
        }


def classify(
    transition: Transition, data: Mapping[str, Any] | None, version: str | None
) -> TransitionResult | PlannedWrite:
    """The outcome of `transition` against the stored `data` at `version` (`data` None: the
    document is missing): a skipped result, or the write to attempt."""
    t = transition
    if data is None:
        return _result(t, TransitionOutcome.NOT_FOUND, None, "no such document")
    parsed = parse_signal(t.signal_id, data, version=version)
    if isinstance(parsed, InvalidSignal):
        raw_status = parsed.raw_status
        if not t.allow_invalid or raw_status not in _KNOWN_STATUSES:
            detail = "; ".join(parsed.reasons)
            return _result(t, TransitionOutcome.INVALID, raw_status, detail, parsed)
        status = SignalStatus(raw_status)
    else:
        status = parsed.status
    if status is not t.expected_status:
        detail = f"status is {status}, expected {t.expected_status}"
        return _result(t, TransitionOutcome.STATUS_MOVED, status, detail, parsed)
    if t.expected_version is not None and version != t.expected_version:
        detail = f"the document changed since it was read (version {t.expected_version})"
        return _result(t, TransitionOutcome.CHANGED, status, detail, parsed)
    return PlannedWrite(t, with_fields=isinstance(parsed, Signal))


def write_with_retries(
    plan: PlannedWrite,
    write: Callable[[PlannedWrite], bool],
    reread: Callable[[Transition], TransitionResult | PlannedWrite],
) -> TransitionResult:
    """The conditional write of one document (the concurrency contract above): `write` tries
    `plan` on the document as last read and says whether it was applied (False: the document
    changed since); `reread` reads it again and `classify`s the transition on it, which either
    ends it (a result) or plans the next try. `SignalStoreUnavailable` after
    `MAX_WRITE_ATTEMPTS` tries."""
    t = plan.transition
    for _attempt in range(MAX_WRITE_ATTEMPTS):
        if write(plan):
            return applied(t)
        next_step = reread(t)
        if not isinstance(next_step, PlannedWrite):
            return next_step
        plan = next_step
    raise SignalStoreUnavailable(
        f"signal {t.signal_id!r} kept changing during {MAX_WRITE_ATTEMPTS} write attempts"
    )


def applied(transition: Transition) -> TransitionResult:
    return _result(transition, TransitionOutcome.APPLIED, transition.new_status, "")


def _result(
    t: Transition,
    outcome: TransitionOutcome,
    actual: SignalStatus | str | None,
    detail: str,
    current: Signal | InvalidSignal | None = None,
) -> TransitionResult:
    return TransitionResult(
        signal_id=t.signal_id,
        outcome=outcome,
        expected_status=t.expected_status,
        new_status=t.new_status,
        actual_status=actual,
        reason=t.reason,
        detail=detail,
        current=current,
    )


def sort_read(signals: list[Signal], invalid: list[InvalidSignal]) -> SignalRead:
    signals.sort(key=lambda s: s.id)
    invalid.sort(key=lambda s: s.id)
    return SignalRead(signals=signals, invalid=invalid)
