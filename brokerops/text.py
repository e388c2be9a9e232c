"""Text from outside (a broker's message, a symbol, an order id, an exception's text) made safe
for any column before it is stored (issue 20; docs/design.md section 6).

PostgreSQL refuses a NUL character in ``text``/``varchar`` and in ``jsonb`` (``\\u0000``), and
no database takes a lone surrogate (it cannot be encoded as UTF-8): a broker error saying
``"upstream said \\x00 oops"`` would make the database refuse the run's own error, and the run
would stay ``running``. :func:`db_text` replaces each such character with U+FFFD (so a reader
sees that something was there) and bounds the text to its column; :func:`db_json` does the same
to every string of a JSON value. Everything else is kept as it came. Ground floor: no app import.
"""

from __future__ import annotations

import re
from typing import Any

#: What stands for a character the database refuses.
REPLACEMENT = "\ufffd"
#: Marks text cut to its column.
ELLIPSIS = "…"
_REFUSED = re.compile("[\x00\ud800-\udfff]")


def db_text(value: object, *, max_length: int | None = None) -> str:
    """``value`` as text every database column takes: NUL and lone surrogates replaced, at most
    ``max_length`` characters (the last one an ellipsis when cut). ``None`` is ``""``."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if _REFUSED.search(text):
        text = _REFUSED.sub(REPLACEMENT, text)
    if max_length is not None and len(text) > max_length:
        text = text[: max_length - 1] + ELLIPSIS
    return text


def db_json(value: Any) -> Any:
    """A JSON value with every string (keys included) passed through :func:`db_text` (no length
    bound). Returns ``value`` itself when nothing needed cleaning, so the common case copies
    nothing."""
    if isinstance(value, str):
        return db_text(value)
    if isinstance(value, dict):
        pairs = [(db_json(k), db_json(v)) for k, v in value.items()]
        if all(k2 is k and v2 is v for (k2, v2), (k, v) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    if isinstance(value, list | tuple):
        items = [db_json(item) for item in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items
    return value


def db_field_text(model: Any, name: str, value: object) -> str:
    """:func:`db_text` bounded to the ``max_length`` of ``model``'s field ``name`` (none for a
    ``TextField``)."""
    return db_text(value, max_length=model._meta.get_field(name).max_length)


# First characters that make a spreadsheet evaluate a cell (OWASP's CSV injection list): the one
# definition every CSV of the project uses (the workspace's exports, the evidence packs).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(text: str) -> str:
    """``text`` made inert for spreadsheets: a leading ``'`` before a formula character."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
