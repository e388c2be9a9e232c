"""The signal store: the interface every caller uses, its result types, and the factory.

Callers get a store with `get_signal_store()` and never see Firestore or the ORM. Two
implementations behave the same (one test suite runs against both):

- `FirestoreSignalStore` (`brokerops.intent.firestore`): production, and the Firestore emulator;
- `LocalSignalStore` (`brokerops.intent.local`): documents kept as raw JSON in the Django database,
  the embedded default.

Concurrency contract: every status change is conditional. A store reads the document, checks that
its status is still the one the caller expects, and writes only if the document has not changed
since that read (Firestore: an update-time precondition; local: a revision check in the UPDATE's
WHERE clause). When the document did change, the store reads it again: if the status is still the
expected one (another field changed) the change is retried on the fresh copy, otherwise the result
is `STATUS_MOVED` and the other writer's change stands untouched.

Errors: outcomes of a transition (moved, not found, invalid) are results, never exceptions.
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
from collections.abc import Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from brokerops.intent.schema import (
    CLIENT_ORDER_ID_MAX_LENGTH,
    TRANSITION_WRITABLE_FIELDS,
    InvalidSignal,
    Signal,
    SignalStatus,
    parse_signal,
)

#: Longest document id either store accepts (Firestore allows 1,500 bytes; ids are short).
DOCUMENT_ID_MAX_LENGTH = 255

#: How often a transition is retried when its document keeps changing under it (other fields).
MAX_WRITE_ATTEMPTS = 5


class SignalStoreError(Exception):
    """The signal store failed for a reason that needs a person: configuration, permissions,
    a rejected request. Retrying will not help."""


class SignalStoreUnavailable(SignalStoreError):
    """The signal store could not be reached, timed out, or is overloaded. Usually resolves
    itself; retry the whole operation later (transitions are safe to retry)."""


class TransitionOutcome(enum.StrEnum):
    APPLIED = "APPLIED"
    """The status (and fields) were written."""
    STATUS_MOVED = "STATUS_MOVED"
    """Skipped: the stored status is no longer the expected one (see `actual_status`)."""
    NOT_FOUND = "NOT_FOUND"
    """Skipped: no document with this id (deleted since it was read)."""
    INVALID = "INVALID"
    """Skipped: the stored document does not parse; it was not modified (see `detail`)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Transition:
    """A requested status change. `fields` may only name `TRANSITION_WRITABLE_FIELDS`."""

    signal_id: str
    expected_status: SignalStatus
    new_status: SignalStatus
    reason: str
    fields: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class TransitionResult:
    """What happened to one transition.

    `reason` is the status_reason that was (or would have been) written; `actual_status` is the
    stored status after the attempt (`new_status` when applied; the raw string when the document
    is invalid; None when not found); `detail` explains a skip in words.
    """

    signal_id: str
    outcome: TransitionOutcome
    expected_status: SignalStatus
    new_status: SignalStatus
    actual_status: SignalStatus | str | None
    reason: str
    detail: str = ""

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


class SignalStore(abc.ABC):
    """Read and conditionally change signal documents. See the module docstring."""

    @abc.abstractmethod
    def read(
        self, *, statuses: Collection[SignalStatus], include_unknown_status: bool = False
    ) -> SignalRead:
        """Every document whose stored `status` is one of `statuses`, in one bulk read.

        Documents with one of those statuses that do not parse otherwise come back in
        `.invalid`. With `include_unknown_status`, documents whose `status` is present but not a
        known status (a typo, a number, a list) are added to `.invalid` too (Firestore: one
        extra ``not-in`` query). Documents with no `status` at all (missing or null) cannot be
        found by an indexed query in Firestore, so neither store returns them here: use
        `read_all()` (a full scan) for those.
        """

    @abc.abstractmethod
    def read_all(self) -> SignalRead:
        """Every document in the collection (a full scan: for audits, listings and tests)."""

    @abc.abstractmethod
    def get(self, signal_id: str) -> Signal | InvalidSignal | None:
        """One document, parsed; None when it does not exist."""

    def transition(
        self,
        *,
        signal_id: str,
        expected_status: SignalStatus,
        new_status: SignalStatus,
        reason: str,
        fields: Mapping[str, Any] | None = None,
    ) -> TransitionResult:
        """Set `status` to `new_status` only if it is still `expected_status`.

        Also sets `status_reason` to `reason`, stamps `updated_at` with the server's clock and
        writes `fields` (only `TRANSITION_WRITABLE_FIELDS`). A document that does not parse is
        never modified. Returns the outcome; raises only for infrastructure failures.
        """
        return self.transition_many(
            [Transition(signal_id, expected_status, new_status, reason, fields)]
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
    """Raise `ValueError` unless `doc_id` is a valid id in both stores."""
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise ValueError(f"document id must be a non-empty string, not {doc_id!r}")
    if len(doc_id) > DOCUMENT_ID_MAX_LENGTH:
        raise ValueError(f"document id longer than {DOCUMENT_ID_MAX_LENGTH} characters")
    reserved = doc_id.startswith("__") and doc_id.endswith("__")
    if "/" in doc_id or doc_id in {".", ".."} or reserved:
        raise ValueError(f"document id {doc_id!r} is not allowed by Firestore")
    return doc_id


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
        if coid is not None and len(coid) > CLIENT_ORDER_ID_MAX_LENGTH:
            raise ValueError(f"client_order_id longer than {CLIENT_ORDER_ID_MAX_LENGTH}")
        checked.append(Transition(t.signal_id, expected, new, t.reason, fields))
    return checked


def classify(transition: Transition, data: Mapping[str, Any] | None) -> TransitionResult | None:
    """The outcome of `transition` against the stored `data` (None: the document is missing),
    or None when the write should go ahead."""
    t = transition
    if data is None:
        return _result(t, TransitionOutcome.NOT_FOUND, None, "no such document")
    parsed = parse_signal(t.signal_id, data)
    if isinstance(parsed, InvalidSignal):
        return _result(t, TransitionOutcome.INVALID, parsed.raw_status, "; ".join(parsed.reasons))
    if parsed.status is not t.expected_status:
        detail = f"status is {parsed.status}, expected {t.expected_status}"
        return _result(t, TransitionOutcome.STATUS_MOVED, parsed.status, detail)
    return None


def applied(transition: Transition) -> TransitionResult:
    return _result(transition, TransitionOutcome.APPLIED, transition.new_status, "")


def transition_payload(transition: Transition, updated_at: Any) -> dict[str, Any]:
    """The fields a transition writes (`updated_at` is the store's server-time value)."""
    return {
        **(transition.fields or {}),
        "status": transition.new_status.value,
        "status_reason": transition.reason,
        "updated_at": updated_at,
    }


def _result(
    t: Transition, outcome: TransitionOutcome, actual: SignalStatus | str | None, detail: str
) -> TransitionResult:
    return TransitionResult(
        signal_id=t.signal_id,
        outcome=outcome,
        expected_status=t.expected_status,
        new_status=t.new_status,
        actual_status=actual,
        reason=t.reason,
        detail=detail,
    )


def sort_read(signals: list[Signal], invalid: list[InvalidSignal]) -> SignalRead:
    signals.sort(key=lambda s: s.id)
    invalid.sort(key=lambda s: s.id)
    return SignalRead(signals=signals, invalid=invalid)


# --- factory ------------------------------------------------------------------------------------


def get_signal_store() -> SignalStore:
    """The store named by the `SIGNAL_STORE` setting (``local`` or ``firestore``).

    Firestore uses `GOOGLE_CLOUD_PROJECT`, `FIRESTORE_EMULATOR_HOST` (the setting wins over the
    process environment) and `FIRESTORE_SIGNALS_COLLECTION`; its client is built once per
    process and settings combination. Raises `SignalStoreError` when the client cannot be built
    (no credentials, for example).
    """
    from django.conf import settings

    if settings.SIGNAL_STORE == "local":
        from brokerops.intent.local import LocalSignalStore

        return LocalSignalStore()
    if settings.SIGNAL_STORE == "firestore":
        from brokerops.intent.firestore import FirestoreSignalStore, firestore_client

        client = firestore_client(
            project=settings.GOOGLE_CLOUD_PROJECT,
            emulator_host=settings.FIRESTORE_EMULATOR_HOST,
        )
        return FirestoreSignalStore(client, settings.FIRESTORE_SIGNALS_COLLECTION)
    raise SignalStoreError(f"unknown SIGNAL_STORE {settings.SIGNAL_STORE!r}")
