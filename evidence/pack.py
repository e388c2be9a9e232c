"""Build an evidence pack (docs/design.md section 19): one zip, written entry by entry.

Contents: ``attempts.csv`` and one CSV per chained table (``order_events``, ``order_executions``,
``mismatches``, ``run_events``) holding the scope's rows with their ``prev_hash``, ``hash`` and
``hashed_values`` (the canonical serialisation the hash covers, so each row is re-checked
offline); ``heads.csv``, the recorded chain heads that cover those rows, with their signatures;
``verification.json``, the latest verification in words; ``report.html``, all of it readable;
``manifest.json``, every file's SHA-256, byte and row counts and column kinds, and
``manifest.sig``, HMAC-SHA256 of the manifest under ``AUDIT_HMAC_KEY``.

Memory stays flat whatever the scope: rows come from a server-side cursor in chunks and leave
as compressed zip data chunk by chunk; each file's SHA-256 is computed as it is written.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from audit.chain import CHAINS_BY_NAME, canonical, plain
from audit.models import AuditVerification, ChainHead
from audit.wording import unsigned_heads_callout, verification_headline, verification_sentences
from brokerops.fields import ExactDecimalField

from .cells import cell
from .report import report_html
from .scope import TABLES, EvidenceError, Scope, Table, scope_check

FORMAT = "brokerops-evidence/1"
MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
CHUNK_ROWS = 2000
REPORT_ROWS = 200  # rows of each table the HTML report shows (every row is in the CSV)
HASH_COLUMNS = ("prev_hash", "hash", "hashed_values")


@dataclass
class Written:
    """One file of the pack as written: what the manifest says of it."""

    name: str
    sha256: str = ""
    bytes: int = 0
    rows: int | None = None
    columns: list[dict[str, str]] = field(default_factory=list)
    chain: str | None = None
    last_id: int | None = None  # the highest row id (the heads that cover the rows)
    header: list[str] = field(default_factory=list)
    sample: list[list[str]] = field(default_factory=list)  # the first rows, for the report

    def as_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "sha256": self.sha256, "bytes": self.bytes}
        if self.rows is not None:
            data.update(rows=self.rows, columns=self.columns, chain=self.chain)
        return data


def _kind(field: models.Field) -> str:
    if isinstance(field, models.BooleanField):
        return "bool"
    if isinstance(field, models.JSONField):
        return "json"
    if isinstance(field, models.DateTimeField):
        return "timestamp"
    if isinstance(field, models.DecimalField | ExactDecimalField | models.IntegerField):
        return "number"
    if isinstance(field, models.ForeignKey):
        return "number"
    return "text"


def _columns(table: Table) -> list[tuple[str, str]]:
    by_attname = {f.attname: f for f in table.model._meta.concrete_fields}
    names = ["id", *CHAINS_BY_NAME[table.chain].fields] if table.chain else list(table.columns)
    return [(name, _kind(by_attname[name])) for name in names]


class _Entry:
    """One zip entry being written: bytes counted and hashed on their way in."""

    def __init__(self, archive: zipfile.ZipFile, name: str) -> None:
        self.written = Written(name)
        self._digest = hashlib.sha256()
        self._raw = archive.open(zipfile.ZipInfo(name, _now_tuple()), "w", force_zip64=True)

    def write(self, data: bytes) -> None:
        self._digest.update(data)
        self.written.bytes += len(data)
        self._raw.write(data)

    def close(self) -> Written:
        self._raw.close()
        self.written.sha256 = self._digest.hexdigest()
        return self.written


def _now_tuple() -> tuple[int, int, int, int, int, int]:
    now = timezone.now().astimezone(timezone.get_fixed_timezone(0))
    return (now.year, now.month, now.day, now.hour, now.minute, now.second)


def _csv_text(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _table_rows(table: Table, scope: Scope) -> Iterator[tuple[list[str], int]]:
    """Each row of ``table`` in the scope as its cells (and its id), in id order."""
    columns = _columns(table)
    names = [n for n, _ in columns]
    hashed = CHAINS_BY_NAME[table.chain].fields if table.chain else ()
    extra = ("prev_hash", "hash") if table.chain else ()
    queryset = table.rows(scope).order_by("pk").values_list(*names, *extra)
    for values in queryset.iterator(chunk_size=CHUNK_ROWS):
        plain_values = [plain(v) for v in values[: len(names)]]
        cells = [cell(kind, v) for (_, kind), v in zip(columns, plain_values, strict=True)]
        if table.chain:
            prev_hash, row_hash = values[len(names) :]
            body = canonical(dict(zip(hashed, values[1 : len(names)], strict=True))).decode()
            cells += [prev_hash, row_hash, body]
        yield cells, values[0]


def _write_table(archive: zipfile.ZipFile, table: Table, scope: Scope) -> Written:
    entry = _Entry(archive, table.name)
    columns = _columns(table)
    header = [n for n, _ in columns] + (list(HASH_COLUMNS) if table.chain else [])
    entry.write(_csv_text([header]))
    rows, count, last_id, sample = [], 0, None, []
    for cells, row_id in _table_rows(table, scope):
        rows.append(cells)
        if len(sample) < REPORT_ROWS:
            sample.append(cells)
        count += 1
        last_id = row_id
        if len(rows) >= CHUNK_ROWS:
            entry.write(_csv_text(rows))
            rows = []
    entry.write(_csv_text(rows))
    written = entry.close()
    written.rows, written.chain, written.last_id = count, table.chain, last_id
    written.header, written.sample = header, sample
    written.columns = [{"name": n, "kind": k} for n, k in columns]
    return written


def covering_heads(files: list[Written]) -> list[dict[str, Any]]:
    """For each chain in the pack: the first recorded head at or after its last row (it signs a
    chain that holds the rows), and the newest head."""
    heads = []
    for written in files:
        if not written.chain or written.last_id is None:
            continue
        chain = ChainHead.objects.filter(chain=written.chain)
        covering = chain.filter(row_id__gte=written.last_id).order_by("row_id", "pk").first()
        newest = chain.order_by("-pk").first()
        for role, head in (("covers the pack's rows", covering), ("newest", newest)):
            heads.append(_head_row(written, role, head))
    return heads


def _head_row(written: Written, role: str, head: ChainHead | None) -> dict[str, Any]:
    if head is None:
        return {
            "chain": written.chain,
            "role": role,
            "head_id": None,
            "note": f"no recorded head at or after row {written.last_id} yet",
        }
    return {
        "chain": written.chain,
        "role": role,
        "head_id": head.pk,
        "row_id": head.row_id,
        "hash": head.hash,
        "signature": head.signature,
        "recorded_at": plain(head.recorded_at),
        "recorded_by": head.recorded_by,
        "note": "" if head.signature else "unsigned",
    }


def latest_verification() -> dict[str, Any]:
    verification = AuditVerification.objects.order_by("-started_at", "-pk").first()
    if verification is None:
        return {"verified": False, "headline": "The trail was never verified."}
    return {
        "verified": True,
        "id": verification.pk,
        "ok": verification.ok,
        "started_at": plain(verification.started_at),
        "finished_at": plain(verification.finished_at),
        "headline": verification_headline(verification),
        "chains": [s.text for s in verification_sentences(verification)],
        "unsigned_heads": unsigned_heads_callout(verification),
        "first_problem": verification.first_problem,
    }


def manifest_signature(key: str, manifest: bytes) -> str:
    return hmac.new(key.encode(), manifest, hashlib.sha256).hexdigest()


def evidence_pack_write(*, scope: Scope, out: IO[bytes], created_by: str) -> dict[str, Any]:
    """Write the pack of ``scope`` to ``out`` (a binary file); returns its manifest.

    Checks first (:func:`evidence.scope.scope_check`, a signing key): :class:`EvidenceError`
    before the first byte is written.
    """
    key = settings.AUDIT_HMAC_KEY
    if not key:
        raise EvidenceError("evidence packs are signed: set AUDIT_HMAC_KEY (docs/configuration.md)")
    scope_check(scope)
    created_at = plain(timezone.now())
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        # One snapshot of every table (PostgreSQL: a repeatable read would be stricter; the
        # heads and verification are read after the rows, so they cover them).
        with transaction.atomic():
            files = [_write_table(archive, table, scope) for table in TABLES]
        heads = covering_heads(files)
        files.append(_write_heads(archive, heads))
        verification = latest_verification()
        files.append(_write_bytes(archive, "verification.json", _json(verification)))
        report = report_html(
            scope=scope,
            created_at=created_at,
            created_by=created_by,
            files=files,
            heads=heads,
            verification=verification,
        )
        files.append(_write_bytes(archive, "report.html", report))
        manifest = {
            "format": FORMAT,
            "created_at": created_at,
            "created_by": created_by,
            "scope": scope.as_dict(),
            "retention_years": settings.AUDIT_RETENTION_YEARS,
            "signature": f"HMAC-SHA256 of {MANIFEST} under AUDIT_HMAC_KEY, hex, in {SIGNATURE}",
            "files": [f.as_dict() for f in files],
        }
        body = _json(manifest)
        _write_bytes(archive, MANIFEST, body)
        _write_bytes(archive, SIGNATURE, manifest_signature(key, body).encode() + b"\n")
    return manifest


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"


def _write_bytes(archive: zipfile.ZipFile, name: str, data: bytes) -> Written:
    entry = _Entry(archive, name)
    entry.write(data)
    return entry.close()


HEAD_COLUMNS = (
    "chain",
    "role",
    "head_id",
    "row_id",
    "hash",
    "signature",
    "recorded_at",
    "recorded_by",
    "note",
)


def _write_heads(archive: zipfile.ZipFile, heads: list[dict[str, Any]]) -> Written:
    entry = _Entry(archive, "heads.csv")
    entry.write(_csv_text([list(HEAD_COLUMNS)]))
    entry.write(
        _csv_text(
            [
                [
                    cell("text", h.get(c))
                    if c not in ("head_id", "row_id")
                    else cell("number", h.get(c))
                    for c in HEAD_COLUMNS
                ]
                for h in heads
            ]
        )
    )
    written = entry.close()
    written.rows = len(heads)
    written.columns = [
        {"name": c, "kind": "number" if c in ("head_id", "row_id") else "text"}
        for c in HEAD_COLUMNS
    ]
    return written
