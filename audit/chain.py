"""The hash chains of the audit tables (docs/design.md section 12): one writer, one order, one
proof.

Each chained row stores ``prev_hash`` (the ``hash`` of the row before it in its table, ``""`` for
the first) and ``hash`` = SHA-256 over ``prev_hash``, a newline and the row's canonical
serialisation: the chain's fields (:data:`CHAINS`) as a JSON object with sorted keys, decimals as
plain strings without trailing zeros, timestamps as UTC ISO 8601 with microseconds, JSON values
as they read back from the database.

:func:`chain_append` is the only way rows enter a chained table. It holds the chain's lock until
the caller's transaction ends (a PostgreSQL advisory lock; SQLite's write transactions are
serial already), so the chain is linear however many workers write: a row's primary key orders
it. The lock is taken last in a transaction: update other rows first, append audit rows at the
end, so no two transactions wait for each other's locks.

The serialisation of a chain is part of the audit format: changing a chain's fields needs a new
chain version, never an edit of :data:`CHAINS`, or every existing row stops verifying.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Context, Decimal
from functools import lru_cache
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from operator import attrgetter
from typing import Any, TypeVar

from django.db import connections, models, router, transaction
from django.utils import timezone

from brokerops.fields import ExactDecimalField, plain_decimal_text

GENESIS = ""
M = TypeVar("M", bound=models.Model)
_SQLITE_DECIMAL = Context(prec=15)
_INF = float("inf")
_CANONICAL_JSON = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
).encode  # SQLite keeps 15 significant digits (Django's converter)


@dataclass(frozen=True)
class ChainSpec:
    """One chained table: its name in reports and heads, its model, the fields its hash covers."""

    name: str
    app_label: str
    model_name: str
    fields: tuple[str, ...]  # attnames (``attempt_id`` for a foreign key)

    @property
    def lock_key(self) -> int:
        """The PostgreSQL advisory lock key of this chain (a signed 64-bit integer)."""
        digest = hashlib.blake2b(f"brokerops:audit:{self.name}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)


CHAINS: tuple[ChainSpec, ...] = (
    ChainSpec(
        "order_events",
        "orders",
        "OrderEvent",
        (
            "attempt_id",
            "kind",
            "created_at",
            "status_from",
            "status_to",
            "http_status",
            "message",
            "payload",
            "actor",
        ),
    ),
    ChainSpec(
        "mismatches",
        "reconciliation",
        "Mismatch",
        (
            "run_id",
            "kind",
            "severity",
            "symbol",
            "signal_id",
            "client_order_id",
            "alpaca_order_id",
            "expected_qty",
            "actual_qty",
            "action",
            "detail",
            "created_at",
        ),
    ),
    ChainSpec(
        "run_events",
        "reconciliation",
        "RunEvent",
        (
            "run_id",
            "kind",
            "status",
            "mismatch_id",
            "action",
            "message",
            "payload",
            "actor",
            "created_at",
        ),
    ),
    ChainSpec(
        "order_executions",
        "orders",
        "OrderExecution",
        (
            "execution_id",
            "attempt_id",
            "event",
            "qty",
            "price",
            "position_qty",
            "executed_at",
            "received_at",
        ),
    ),
    ChainSpec("mismatch_signals", "reconciliation", "MismatchSignal", ("mismatch_id", "signal_id")),
    ChainSpec(
        "schedule_changes",
        "audit",
        "ScheduleChange",
        (
            "created_at",
            "actor",
            "action",
            "object_type",
            "object_id",
            "object_name",
            "before",
            "after",
        ),
    ),
    # Everything that happened to a break (docs/design.md section 17): one writer,
    # reconciliation.breaks.
    ChainSpec(
        "break_events",
        "reconciliation",
        "BreakEvent",
        (
            "break_case_id",
            "kind",
            "state_from",
            "state_to",
            "run_id",
            "actor",
            "message",
            "payload",
            "created_at",
        ),
    ),
    # Who looked at or took what (docs/design.md section 19): one writer, audit.access.
    ChainSpec(
        "access_records",
        "audit",
        "AccessRecord",
        ("created_at", "username", "what", "object_id", "path", "query"),
    ),
    # An account's activities as Alpaca booked them (docs/design.md section 18): one writer,
    # ledger.services.
    ChainSpec(
        "account_activities",
        "ledger",
        "AccountActivity",
        (
            "account",
            "activity_id",
            "activity_type",
            "sub_type",
            "symbol",
            "side",
            "qty",
            "price",
            "net_amount",
            "occurred_at",
            "order_id",
            "status",
            "description",
            "raw",
            "recorded_at",
        ),
    ),
)
CHAINS_BY_NAME = {spec.name: spec for spec in CHAINS}


def chain_for(model: type[models.Model]) -> ChainSpec:
    """The chain of a chained model (historical models of migrations included)."""
    for spec in CHAINS:
        if (model._meta.app_label, model._meta.object_name) == (spec.app_label, spec.model_name):
            return spec
    raise LookupError(f"{model._meta.label} is not a chained audit table")


def plain(value: Any) -> Any:
    """A field value in its canonical JSON form (see the module docstring)."""
    if isinstance(value, Decimal):
        return plain_decimal_text(value)  # exact: normalize() would round past 28 digits
    if isinstance(value, datetime):
        if timezone.is_naive(value):
            raise ValueError(f"naive timestamp {value!r} in an audit row")
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def canonical(values: Mapping[str, Any]) -> bytes:
    """The canonical serialisation of a row's chained values."""
    return _CANONICAL_JSON({name: plain(value) for name, value in values.items()}).encode()


def row_hash(prev_hash: str, values: Mapping[str, Any]) -> str:
    """``hash`` of a row whose chained values are ``values`` and whose predecessor's is
    ``prev_hash``."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(values)).hexdigest()


def row_hasher(model: type[models.Model], spec: ChainSpec) -> Callable[[str, list[Any]], str]:
    """A faster :func:`row_hash` for many rows read from the database, as lists of values in
    ``spec.fields`` order: only the columns that need it are brought to their canonical form
    (timestamps and decimals; the other columns are plain JSON already). Same result."""
    fields = _fields_by_attname(model)
    stamps = [i for i, n in enumerate(spec.fields) if isinstance(fields[n], models.DateTimeField)]
    decimals = [
        i
        for i, n in enumerate(spec.fields)
        if isinstance(fields[n], models.DecimalField | ExactDecimalField)
    ]
    names = spec.fields
    dumps = _CANONICAL_JSON
    sha256 = hashlib.sha256

    def hasher(prev_hash: str, values: list[Any]) -> str:
        for i in stamps:
            if values[i] is not None:
                values[i] = plain(values[i])
        for i in decimals:
            if values[i] is not None:
                values[i] = plain(values[i])
        text = dumps(dict(zip(names, values, strict=True)))
        return sha256(prev_hash.encode() + b"\n" + text.encode()).hexdigest()

    return hasher


def head_signature(key: str, *, chain: str, row_id: int, hash: str) -> str:
    """HMAC-SHA256 of a chain head under ``AUDIT_HMAC_KEY`` (hex)."""
    message = f"{chain}\n{row_id}\n{hash}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _decimal_as_stored(field: models.DecimalField, value: Any, vendor: str) -> Decimal:
    value = Decimal(value)
    step = Decimal(1).scaleb(-field.decimal_places)
    if vendor == "sqlite":
        value = _SQLITE_DECIMAL.create_decimal_from_float(float(value))
    return value.quantize(step)


def _plain_json(value: Any) -> str:
    """``value`` as it appears in :func:`canonical`'s text."""
    if type(value) is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if type(value) is datetime:  # its text needs no escaping: quoted, not sent through JSON
        return f'"{plain(value)}"'
    return _CANONICAL_JSON(plain(value))


def _is_plain_json(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` reads back from JSON as it is (str keys, lists, finite scalars): a
    body parsed from the broker's JSON always does, and then the round trip through the text
    is skipped (it was half the cost of chaining an activity)."""
    kind = type(value)
    if kind is dict:
        if depth > 50:
            return False  # let the round trip judge (and refuse) a deep nesting
        for key, item in value.items():
            if type(key) is not str:
                return False
            item_kind = type(item)
            if item_kind is str or item_kind is int or item is None or item_kind is bool:
                continue
            if not _is_plain_json(item, depth + 1):
                return False
        return True
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return value == value and value not in (_INF, -_INF)  # NaN and infinities are refused
    if kind is list:
        return depth <= 50 and all(_is_plain_json(item, depth + 1) for item in value)
    return False


def _encode_json_field(row: models.Model, name: str, _field: Any) -> str:
    value = getattr(row, name)
    if value is None or not _is_plain_json(value):
        # What JSON gives back: tuples become lists, keys strings.
        value = json.loads(json.dumps(value if value is not None else {}, allow_nan=False))
        setattr(row, name, value)
    text = _CANONICAL_JSON(value)
    row.__dict__.setdefault("_chained_json", {})[name] = (value, text)
    return text


def chained_json_text(row: models.Model, name: str) -> str | None:
    """The JSON text :func:`chain_append` hashed for the JSON field ``name`` of ``row`` (valid
    input for a ``json``/``jsonb`` column), while the field still holds the value it was made
    from; else None. A writer that sends the text itself (the ledger's ``COPY``) need not
    serialise every body a second time."""
    value, text = row.__dict__.get("_chained_json", {}).get(name, (None, None))
    return text if value is not None and getattr(row, name) is value else None


def _encode_exact(row: models.Model, name: str, field: Any) -> str:
    value = getattr(row, name)
    if value is None:
        return "null"
    value = field.to_python(value)  # stored exactly: read back as given
    setattr(row, name, value)
    return f'"{plain_decimal_text(value)}"'  # digits, sign and point: nothing to escape


def _stamp_encoder() -> Callable[[models.Model, str, Any], str]:
    """A timestamp field's encoder, remembering its last value: the rows of one append share
    their ``recorded_at``/``created_at`` (one ``now``)."""
    last: list[tuple[Any, str]] = [(None, "")]  # one tuple, swapped whole: thread-safe

    def encode(row: models.Model, name: str, _field: Any) -> str:
        value = getattr(row, name)
        seen, text = last[0]
        if value is seen and value is not None:
            return text
        text = _plain_json(value)
        last[0] = (value, text)
        return text

    return encode


@lru_cache(maxsize=64)
def row_encoder(model: type[models.Model], vendor: str) -> Callable[[models.Model], bytes]:
    """The canonical serialisation (:func:`canonical`, the same bytes) of a row of ``model``
    about to be written to ``vendor``, bringing its values to what the database will give back
    on the way: JSON normalised (tuples become lists, keys strings), exact decimals as given,
    other decimals quantized (on SQLite to 15 significant digits). Computed once per model: which
    field needs which treatment is decided here, not for every row of a 100,000-row append;
    the row's JSON text is put together from its fields' texts in sorted order, which is what
    ``json.dumps(sort_keys=True)`` of the whole row writes."""
    spec = chain_for(model)
    fields = _fields_by_attname(model)
    parts: list[tuple[str, str, Any, Callable[[models.Model, str, Any], str] | None]] = []
    for name in sorted(spec.fields):
        field = fields[name]
        if isinstance(field, models.JSONField):
            encode = _encode_json_field
        elif isinstance(field, ExactDecimalField):
            encode = _encode_exact
        elif isinstance(field, models.DecimalField):

            def encode(row, name, field, vendor=vendor):
                value = getattr(row, name)
                if value is not None:
                    value = _decimal_as_stored(field, value, vendor)
                    setattr(row, name, value)
                return _plain_json(value)

        elif isinstance(field, models.DateTimeField):
            encode = _stamp_encoder()
        else:
            encode = None  # a text value is written here; anything else through _plain_json
        parts.append((encode_basestring_ascii(name) + ":", name, field, encode))
    stamp_default = "created_at" in spec.fields
    getter = attrgetter(*(name for _, name, _, _ in parts))
    values_of = getter if len(parts) > 1 else lambda row: (getter(row),)

    def encoder(row: models.Model) -> bytes:
        if stamp_default and getattr(row, "created_at", None) is None:
            row.created_at = timezone.now()
        texts = []
        for (key, name, field, encode), value in zip(parts, values_of(row), strict=True):
            if encode is not None:
                texts.append(key + encode(row, name, field))
            elif type(value) is str:
                texts.append(key + encode_basestring_ascii(value))
            else:
                texts.append(key + _plain_json(value))
        return ("{" + ",".join(texts) + "}").encode()

    return encoder


def _fields_by_attname(model: type[models.Model]) -> dict[str, models.Field]:
    return {field.attname: field for field in model._meta.concrete_fields}


def _lock_and_read_head(spec: ChainSpec, model: type[models.Model], using: str) -> str:
    """Take the chain's lock (until the transaction ends), then read its last hash.

    Two statements on purpose: in READ COMMITTED a statement sees what was committed when it
    started, so the head must be read by a statement that starts after the lock is ours.
    """
    connection = connections[using]
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [spec.lock_key])
        elif connection.vendor != "sqlite":  # SQLite: one writer at a time already
            raise NotImplementedError(
                f"audit chains need PostgreSQL or SQLite, not {connection.vendor}"
            )
        cursor.execute(f"SELECT hash FROM {table} ORDER BY id DESC LIMIT 1")  # noqa: S608
        row = cursor.fetchone()
    return row[0] if row else GENESIS


def chain_head(model: type[models.Model], *, using: str | None = None) -> tuple[int, str] | None:
    """``(id, hash)`` of the last row of a chained table, or None when it is empty."""
    using = using or router.db_for_read(model)
    return model._default_manager.using(using).order_by("-pk").values_list("pk", "hash").first()


def chain_append(rows: Sequence[M] | Iterable[M], *, batch_size: int = 500) -> list[M]:
    """Insert ``rows`` (unsaved instances of one chained model) at the end of their chain.

    The rows get ``created_at`` (now, when unset), ``prev_hash`` and ``hash``; their values are
    brought to what the database gives back (JSON normalised; on SQLite decimals to 15
    significant digits) so that what is hashed is what is read. Runs in a transaction (the
    caller's, when there is one: the chain stays locked until it ends).
    """
    rows = list(rows)
    if not rows:
        return rows
    model = type(rows[0])
    spec = chain_for(model)
    using = router.db_for_write(model)
    encode = row_encoder(model, connections[using].vendor)
    sha256 = hashlib.sha256
    with transaction.atomic(using=using):
        prev = _lock_and_read_head(spec, model, using)
        for row in rows:
            if type(row) is not model:
                raise TypeError(f"one chain per call: {type(row).__name__} among {model.__name__}")
            row.prev_hash = prev
            row.hash = prev = sha256(prev.encode() + b"\n" + encode(row)).hexdigest()
        model._default_manager.using(using).bulk_create(rows, batch_size=batch_size)
    return rows


def chain_existing_rows(model: type[models.Model], *, batch_size: int = 2000) -> int:
    """Chain the rows a table held before it was chained, in primary-key order (a migration
    step, before the triggers exist): each row's hash is computed from its values as read back,
    exactly as verification will. Returns the number of rows chained."""
    spec = chain_for(model)
    manager = model._default_manager
    prev = GENESIS
    pending = []
    count = 0
    hasher = row_hasher(model, spec)
    rows = manager.order_by("pk").values_list("pk", *spec.fields)
    for pk, *values in rows.iterator(chunk_size=batch_size):
        row = model(pk=pk, prev_hash=prev)
        row.hash = prev = hasher(prev, values)
        pending.append(row)
        count += 1
        if len(pending) >= batch_size:
            manager.bulk_update(pending, ["prev_hash", "hash"])
            pending = []
    manager.bulk_update(pending, ["prev_hash", "hash"])
    return count


def chain_existing_operation(app_label: str, model_name: str) -> Any:
    """The migration operation chaining a table's existing rows (see
    :func:`chain_existing_rows`); its reverse leaves the hashes (the columns go with the
    field's own reverse)."""
    from django.db import migrations

    return migrations.RunPython(
        lambda apps, schema_editor: chain_existing_rows(apps.get_model(app_label, model_name)),
        migrations.RunPython.noop,
    )
