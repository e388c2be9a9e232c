"""Recompute the audit chains and check the recorded heads (pure reads; no writes).

A chain is checked in segments of primary keys; each row needs only its own values and the hash
stored in the row before it, so segments are independent and run in parallel processes on a
large table. Every problem names its row: a changed row (its content no longer gives its
hash), a deleted, inserted or moved row (a ``prev_hash`` that does not name the row before),
a rewritten chain (a recorded head whose row now has another hash, or a head whose signature
does not match ``AUDIT_HMAC_KEY``).

The newest rows: a row deleted with every row after it leaves no broken link behind, so it is
named only by a recorded head that names it (heads are recorded at the end of every writer's
cycle and by a beat task, docs/design.md section 12), or, on SQLite, by the table's
AUTOINCREMENT sequence, which is rolled back with its transaction and so can run past the last
row only when rows were deleted. On PostgreSQL a sequence past the last row proves nothing
(a rolled-back insert consumes ids too): rows written after the newest head and deleted with
the triggers off cannot be told from a rollback, which is why heads are recorded so often. Each
report counts the rows after its newest head (``uncovered``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import connections, models, router, transaction

from .chain import CHAINS, GENESIS, ChainSpec, head_signature, row_hasher

# What audit.chain.plain gives for a timestamp, printed by PostgreSQL itself.
_PG_CANONICAL_TIMESTAMP = 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'
PARALLEL_FROM_ROWS = 200_000  # below this, one process (forking costs more than it saves)
_CHUNK = 20_000


@dataclass(frozen=True)
class Problem:
    chain: str
    row_id: int | None
    what: str

    def __str__(self) -> str:
        where = f"row {self.row_id}" if self.row_id is not None else "heads"
        return f"{self.chain} {where}: {self.what}"


@dataclass
class ChainReport:
    chain: str
    rows: int = 0
    head_id: int | None = None
    head_hash: str = ""
    heads_checked: int = 0
    uncovered: int = 0  # rows after the newest recorded head
    unsigned: int = 0  # recorded heads without a signature
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "head_id": self.head_id,
            "head_hash": self.head_hash,
            "heads_checked": self.heads_checked,
            "uncovered": self.uncovered,
            "unsigned": self.unsigned,
            "problems": len(self.problems),
            "first_problem": str(self.problems[0]) if self.problems else None,
        }


@dataclass(frozen=True)
class _Segment:
    chain: str
    first_pk: int
    last_pk: int


@dataclass
class _SegmentResult:
    rows: int
    problems: list[Problem]
    last: tuple[int, str] | None


def _model(spec: ChainSpec):
    return apps.get_model(spec.app_label, spec.model_name)


def _row_before(spec: ChainSpec, pk: int) -> tuple[int, str] | None:
    rows = _model(spec)._default_manager.filter(pk__lt=pk).order_by("-pk")
    return rows.values_list("pk", "hash").first()


def check_segment(segment: _Segment) -> _SegmentResult:
    """Check rows ``first_pk..last_pk`` of a chain against each other and the row before."""
    spec = next(s for s in CHAINS if s.name == segment.chain)
    before = _row_before(spec, segment.first_pk)
    prev_pk, prev_hash = before if before else (None, GENESIS)
    hasher = row_hasher(_model(spec), spec)
    problems: list[Problem] = []
    rows = 0
    last = None
    for pk, stored_prev, stored_hash, *values in _rows(spec, segment):
        rows += 1
        if stored_prev != prev_hash:
            problems.append(
                Problem(
                    spec.name,
                    pk,
                    "prev_hash does not name the row before it"
                    + (
                        f" (row {prev_pk}): a row between them was deleted or inserted, or rows"
                        " were reordered"
                        if prev_pk is not None
                        else ": the rows before it are missing"
                    ),
                )
            )
        if hasher(stored_prev, values) != stored_hash:
            problems.append(
                Problem(
                    spec.name, pk, "content does not match its hash: changed after it was written"
                )
            )
        prev_pk, prev_hash = pk, stored_hash
        last = (pk, stored_hash)
    return _SegmentResult(rows, problems, last)


def _rows(spec: ChainSpec, segment: _Segment) -> Iterator[list[Any]]:
    """``[pk, prev_hash, hash, *values]`` of each row of the segment, in key order, the values
    as the ORM reads them; on PostgreSQL through a server-side cursor with the timestamps
    rendered in their canonical text by the server (parsing and re-printing three million
    timestamps is a third of the work)."""
    model = _model(spec)
    connection = connections[router.db_for_read(model)]
    if connection.vendor != "postgresql":
        query = (
            model._default_manager.filter(pk__gte=segment.first_pk, pk__lte=segment.last_pk)
            .order_by("pk")
            .values_list("pk", "prev_hash", "hash", *spec.fields)
        )
        for row in query.iterator(chunk_size=_CHUNK):
            yield list(row)
        return
    fields = {f.attname: f for f in model._meta.concrete_fields}
    columns, json_positions = [], []
    for position, name in enumerate(spec.fields, start=3):
        field = fields[name]
        column = connection.ops.quote_name(field.column)
        if isinstance(field, models.DateTimeField):
            column = f"to_char({column} AT TIME ZONE 'UTC', '{_PG_CANONICAL_TIMESTAMP}')"
        elif isinstance(field, models.JSONField):
            json_positions.append(position)
        columns.append(column)
    table = connection.ops.quote_name(model._meta.db_table)
    sql = (
        f"SELECT id, prev_hash, hash, {', '.join(columns)} FROM {table} "  # noqa: S608
        "WHERE id BETWEEN %s AND %s ORDER BY id"
    )
    with transaction.atomic(using=connection.alias), connection.chunked_cursor() as cursor:
        cursor.execute(sql, [segment.first_pk, segment.last_pk])
        while batch := cursor.fetchmany(_CHUNK):
            for row in batch:
                row = list(row)
                for position in json_positions:
                    if isinstance(row[position], str):
                        row[position] = json.loads(row[position])
                yield row


def _segments(spec: ChainSpec, parts: int) -> list[_Segment]:
    model = _model(spec)
    bounds = model._default_manager.order_by("pk").values_list("pk", flat=True)
    first = bounds.first()
    if first is None:
        return []
    last = model._default_manager.order_by("-pk").values_list("pk", flat=True).first()
    step = max(1, -(-(last - first + 1) // parts))
    return [
        _Segment(spec.name, start, min(last, start + step - 1))
        for start in range(first, last + 1, step)
    ]


def _processes(requested: int) -> int:
    if multiprocessing.current_process().daemon:  # a Celery prefork child cannot fork children
        return 1
    return requested if requested > 0 else (os.cpu_count() or 1)


def check_chains(*, processes: int = 0) -> dict[str, ChainReport]:
    """Recompute every chain; ``processes`` 0 means one per core (large tables only)."""
    reports = {spec.name: ChainReport(spec.name) for spec in CHAINS}
    workers = _processes(processes)
    segments: list[_Segment] = []
    for spec in CHAINS:
        count = _model(spec)._default_manager.count()
        parts = workers * 4 if workers > 1 and count >= PARALLEL_FROM_ROWS else 1
        segments += _segments(spec, parts)
    if workers > 1 and len(segments) > len(CHAINS):
        connections.close_all()  # each child opens its own connection
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(check_segment, segments, chunksize=1)
    else:
        results = [check_segment(segment) for segment in segments]
    for segment, result in zip(segments, results, strict=True):
        report = reports[segment.chain]
        report.rows += result.rows
        report.problems += result.problems
        if result.last is not None:
            report.head_id, report.head_hash = result.last
    for report in reports.values():
        report.problems.sort(key=lambda p: (p.row_id is None, p.row_id or 0))
    return reports


def check_heads(reports: dict[str, ChainReport], *, key: str | None) -> list[str]:
    """Check every recorded head against its row (and its signature when ``key`` is set);
    problems go into the chain's report. Returns notes (not problems) for the summary."""
    from .models import ChainHead

    notes = []
    first_signed = (
        ChainHead.objects.exclude(signature="").order_by("pk").values_list("pk", flat=True).first()
    )
    if first_signed is not None and not key:
        notes.append("head signatures not checked: AUDIT_HMAC_KEY is not set here")
    for spec in CHAINS:
        report = reports[spec.name]
        heads = list(
            ChainHead.objects.filter(chain=spec.name)
            .order_by("pk")
            .values_list("pk", "row_id", "hash", "signature", "recorded_by", "recorded_at")
        )
        report.heads_checked = len(heads)
        report.unsigned = sum(1 for h in heads if not h[3])
        newest = max((h[1] for h in heads), default=None)
        if newest is not None and report.head_id is not None:
            report.uncovered = (
                _model(spec)._default_manager.filter(pk__gt=newest).count()
                if report.head_id > newest
                else 0
            )
        elif report.head_id is not None:
            report.uncovered = report.rows
        hashes = _hashes_of(spec, sorted({h[1] for h in heads}))
        for pk, row_id, head_hash, signature, recorded_by, recorded_at in heads:
            said = f"head #{pk} ({recorded_by}, {recorded_at:%Y-%m-%d %H:%M:%S}) names row {row_id}"
            now = hashes.get(row_id)
            if now is None:
                report.problems.append(Problem(spec.name, row_id, f"{said}, which is missing"))
            elif now != head_hash:
                report.problems.append(
                    Problem(
                        spec.name,
                        row_id,
                        f"{said} with hash {head_hash[:12]}, the row has {now[:12]}: the chain"
                        " was rewritten",
                    )
                )
            if not key:
                continue
            if signature:
                wanted = head_signature(key, chain=spec.name, row_id=row_id, hash=head_hash)
                if signature != wanted:
                    report.problems.append(
                        Problem(spec.name, row_id, f"{said}: its signature does not match the key")
                    )
            elif first_signed is not None and pk > first_signed:
                report.problems.append(
                    Problem(spec.name, row_id, f"{said}: unsigned after heads were signed")
                )
        if newest is not None:
            _check_sequence(spec, report)
        report.problems.sort(key=lambda p: (p.row_id is None, p.row_id or 0))
    return notes


def _check_sequence(spec: ChainSpec, report: ChainReport) -> None:
    """SQLite: a table's AUTOINCREMENT sequence past its last row names rows deleted at the end
    (the sequence is rolled back with its transaction, so a rollback leaves no such gap). Judged
    only once a head was recorded: a reset (the demo's, the tests' flush) empties heads too."""
    model = _model(spec)
    connection = connections[router.db_for_read(model)]
    if connection.vendor != "sqlite":
        return  # PostgreSQL: rolled-back inserts consume ids too (see the module docstring)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        # One statement: a row a writer adds meanwhile moves both figures together.
        cursor.execute(
            f"SELECT seq, (SELECT max(id) FROM {table}) FROM sqlite_sequence"  # noqa: S608
            " WHERE name = %s",
            [model._meta.db_table],
        )
        row = cursor.fetchone()
    if row is None:
        return
    given, last = row[0], row[1] or 0
    if given > last:
        where = f"row {last}" if last else "no row at all"
        report.problems.append(
            Problem(
                spec.name,
                given,
                f"ids up to {given} were given out, the table ends at {where}: rows after it"
                " were deleted",
            )
        )


def _hashes_of(spec: ChainSpec, row_ids: Sequence[int]) -> dict[int, str]:
    model = _model(spec)
    found: dict[int, str] = {}
    for start in range(0, len(row_ids), 5000):
        chunk = row_ids[start : start + 5000]
        found.update(model._default_manager.filter(pk__in=chunk).values_list("pk", "hash"))
    return found
