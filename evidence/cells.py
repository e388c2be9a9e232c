"""One value as an evidence pack's CSV cell, by its column's kind: the one function both the
builder (:mod:`evidence.pack`) and the offline check (:mod:`evidence.check`) apply, the check to
the hashed values a row carries, so a cell edited in a spreadsheet is named.

Kinds: ``number`` (plain digits, never an exponent: left as they are, a spreadsheet reads them
as numbers), ``timestamp`` (ISO 8601 UTC), ``bool`` (``true``/``false``), ``json`` (sorted keys),
``text`` (made inert for spreadsheets with the project's one rule,
:func:`brokerops.text.neutralise_formula`). Empty (None) is an empty cell. Pure: no database.
"""

from __future__ import annotations

import json
from typing import Any

from brokerops.text import neutralise_formula

KINDS = ("number", "timestamp", "bool", "json", "text")


def cell(kind: str, value: Any) -> str:
    """``value`` (in the chains' canonical JSON form: decimals and timestamps as text) as the
    cell of a ``kind`` column."""
    if value is None:
        return ""
    if kind == "bool":
        return "true" if value else "false"
    if kind == "json":
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if kind in ("number", "timestamp"):
        return str(value)
    return neutralise_formula(value if isinstance(value, str) else str(value))
