"""Check an evidence pack offline (docs/design.md section 19): no database, only the pack and
the key. Every problem is named: a zip that is truncated or damaged, a missing or extra file, a
manifest whose signature does not match the key (forged, or signed with another key), a file
whose SHA-256 or row count is not the manifest's (a row removed, a cell edited), a row whose hash
does not match its hashed values, a cell that does not say what the hashed values say.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import zipfile
from typing import Any

from .cells import cell

MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
PER_FILE = 20  # problems named per file (the count of the rest is given)


def evidence_check(path: str, *, key: str | None) -> list[str]:
    """The problems of the pack at ``path`` (empty: it is intact and signed with ``key``)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        return [f"{path}: not a readable zip (truncated or damaged): {exc}"]
    with archive:
        names = archive.namelist()
        for needed in (MANIFEST, SIGNATURE):
            if needed not in names:
                return [f"{needed} is missing: not an evidence pack, or cut short"]
        try:
            body = archive.read(MANIFEST)
            signature = archive.read(SIGNATURE).decode().strip()
        except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as exc:
            return [f"the manifest cannot be read (damaged zip): {exc}"]
        problems = _signature(body, signature, key)
        try:
            manifest = json.loads(body)
            listed = {entry["name"]: entry for entry in manifest["files"]}
        except (ValueError, KeyError, TypeError) as exc:
            return [*problems, f"{MANIFEST} is not a manifest: {exc}"]
        for name in names:
            if name not in listed and name not in (MANIFEST, SIGNATURE):
                problems.append(f"{name}: an extra file the manifest does not list")
        for name, entry in listed.items():
            if name not in names:
                problems.append(f"{name}: listed in the manifest, missing from the zip")
            else:
                problems += _file(archive, entry)
    return problems


def _signature(body: bytes, signature: str, key: str | None) -> list[str]:
    if not key:
        return ["the manifest's signature cannot be checked: AUDIT_HMAC_KEY is not set here"]
    wanted = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(wanted, signature):
        return [
            f"{MANIFEST}: its signature does not match AUDIT_HMAC_KEY (the manifest was changed"
            " or forged, or signed with another key)"
        ]
    return []


def _file(archive: zipfile.ZipFile, entry: dict[str, Any]) -> list[str]:
    name = entry["name"]
    digest, size = hashlib.sha256(), 0
    try:
        with archive.open(name) as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return [f"{name}: damaged in the zip ({exc})"]
    problems = []
    if digest.hexdigest() != entry.get("sha256"):
        problems.append(
            f"{name}: SHA-256 {digest.hexdigest()[:16]}… is not the manifest's"
            f" {str(entry.get('sha256'))[:16]}…: the file was changed"
        )
    if entry.get("rows") is not None and name.endswith(".csv"):
        problems += _rows(archive, entry)
    return problems


def _rows(archive: zipfile.ZipFile, entry: dict[str, Any]) -> list[str]:
    """Row count, and for a chained table each row's hash and cells, against the manifest."""
    name, columns = entry["name"], entry.get("columns", [])
    problems: list[str] = []
    with archive.open(name) as stream:
        reader = csv.reader(io.TextIOWrapper(stream, encoding="utf-8", newline=""))
        header = next(reader, [])
        expected = [c["name"] for c in columns]
        if header[: len(expected)] != expected:
            return [f"{name}: its columns are not the manifest's ({', '.join(expected)})"]
        count = 0
        for number, row in enumerate(reader, start=1):
            count += 1
            if entry.get("chain") and len(problems) < PER_FILE:
                problems += _chained_row(name, number, row, columns)
    if count != entry["rows"]:
        problems.insert(
            0,
            f"{name}: {count:,} rows, the manifest says {entry['rows']:,} (rows removed or added)",
        )
    return problems


def _chained_row(name: str, number: int, row: list[str], columns: list[dict]) -> list[str]:
    width = len(columns)
    if len(row) != width + 3:
        return [f"{name} row {number}: {len(row)} cells, {width + 3} expected"]
    row_id, (prev_hash, row_hash, hashed) = row[0], row[width:]
    where = f"{name} row {number} (id {row_id})"
    recomputed = hashlib.sha256(prev_hash.encode() + b"\n" + hashed.encode()).hexdigest()
    if recomputed != row_hash:
        return [f"{where}: its hash does not match its hashed values (the row was changed)"]
    try:
        values = json.loads(hashed)
    except ValueError:
        return [f"{where}: its hashed values are not JSON"]
    problems = []
    for column, text in zip(columns[1:], row[1:width], strict=True):
        said = cell(column["kind"], values.get(column["name"]))
        if text != said:
            problems.append(
                f"{where}, column {column['name']}: the cell reads {text!r}, the hashed values"
                f" say {said!r} (the cell was edited)"
            )
    return problems
