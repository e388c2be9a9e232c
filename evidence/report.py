"""The pack's ``report.html``: what an examiner reads first (docs/design.md section 19). Plain
HTML with its style inline (it opens offline), every value escaped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.html import escape

if TYPE_CHECKING:
    from .pack import Written
    from .scope import Scope

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em; color: #222; max-width: 80em }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: 12px }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top }
th { background: #f3f3f3 } td { overflow-wrap: anywhere; max-width: 28em }
.ok { color: #166534 } .broken { color: #b91c1c; font-weight: bold } .note { color: #555 }
"""
# Columns of a chained table the report shows (the CSV has them all).
_HIDDEN = {"hashed_values", "payload", "detail"}


def _table(header: list[str], rows: list[list[str]]) -> str:
    shown = [i for i, name in enumerate(header) if name not in _HIDDEN]
    head = "".join(f"<th>{escape(header[i])}</th>" for i in shown)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_short(header[i], row[i]))}</td>" for i in shown) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _short(column: str, value: str) -> str:
    return value[:16] + "…" if column in ("hash", "prev_hash", "signature") and value else value


def report_html(
    *,
    scope: Scope,
    created_at: str,
    created_by: str,
    files: list[Written],
    heads: list[dict[str, Any]],
    verification: dict[str, Any],
) -> bytes:
    parts = [
        "<!doctype html><html lang='en'><meta charset='utf-8'>",
        f"<title>Evidence pack: {escape(scope.describe())}</title><style>{_STYLE}</style>",
        f"<h1>Evidence pack: {escape(scope.describe())}</h1>",
        f"<p>Built {escape(created_at)} (UTC) by {escape(created_by)} from the brokerops audit"
        " trail. Every file is listed with its SHA-256 in <code>manifest.json</code>, signed"
        " with HMAC-SHA256 in <code>manifest.sig</code>; <code>manage.py verify_evidence</code>"
        " checks the whole pack offline, each row's hash included. The trail's rows are kept"
        f" at least {settings.AUDIT_RETENTION_YEARS} years (AUDIT_RETENTION_YEARS).</p>",
        "<h2>Contents</h2><ul>",
    ]
    for written in files:
        rows = f": {written.rows:,} rows" if written.rows is not None else ""
        parts.append(f"<li><code>{escape(written.name)}</code>{rows}</li>")
    parts.append("</ul><h2>Latest verification of the whole trail</h2>")
    parts.append(f"<p>{escape(verification['headline'])}</p>")
    for sentence in verification.get("chains", []):
        parts.append(f"<p class='note'>{escape(sentence)}</p>")
    if verification.get("unsigned_heads"):
        parts.append(f"<p class='broken'>{escape(verification['unsigned_heads'])}</p>")
    parts.append("<h2>Chain heads covering these rows</h2>")
    parts.append(
        "<p>A recorded head names the last row of a chain as it was then, with its hash, signed"
        " with the key the trail is kept with: a row covered by a signed head cannot be changed"
        " without the change showing.</p>"
    )
    columns = [
        "chain",
        "role",
        "head_id",
        "row_id",
        "hash",
        "signature",
        "recorded_at",
        "recorded_by",
        "note",
    ]
    parts.append(_table(columns, [[str(h.get(c) or "") for c in columns] for h in heads]))
    for written in files:
        if written.rows is None:
            continue
        parts.append(f"<h2>{escape(written.name)} ({written.rows:,} rows)</h2>")
        if written.rows > len(written.sample):
            parts.append(
                f"<p class='note'>The first {len(written.sample):,} rows; every row is in the"
                " CSV.</p>"
            )
        parts.append(_table(written.header, written.sample) if written.rows else "<p>none</p>")
    parts.append("</html>\n")
    return "".join(parts).encode("utf-8")
