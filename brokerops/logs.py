"""Log lines for log shippers (``LOG_FORMAT=json``) and the context they carry.

docs/design.md section 13: one line per event; the run id and the ``client_order_id`` as fields.

- :class:`JsonFormatter` renders a record as one JSON object on one line: ``ts`` (ISO 8601, UTC,
  milliseconds), ``level``, ``logger``, ``message``, then ``run_id`` and ``client_order_id`` when
  known, and ``exc_info`` / ``stack_info`` as strings (a traceback's newlines are escaped inside
  the string, so the record stays one line).
- :func:`log_context` attaches ``run_id`` / ``client_order_id`` to every record logged inside the
  ``with`` block by this thread or task (a :class:`~contextvars.ContextVar`); a value passed to
  the log call itself (``extra={"client_order_id": ...}``) wins over the context's.

Nothing here imports Django: settings' ``LOGGING`` names the formatter, and the logging set-up
runs before the apps are loaded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

# The fields a record may carry, in the order they are written.
CONTEXT_FIELDS = ("run_id", "client_order_id")

_EMPTY: MappingProxyType[str, Any] = MappingProxyType({})
_context: ContextVar[MappingProxyType[str, Any]] = ContextVar(
    "brokerops_log_context", default=_EMPTY
)


@contextmanager
def log_context(
    *, run_id: int | str | None = None, client_order_id: str | None = None
) -> Iterator[None]:
    """Records logged inside the block carry these fields (``None`` leaves a field as the
    enclosing context has it); the previous context is back when the block ends."""
    fields = {
        key: value
        for key, value in (("run_id", run_id), ("client_order_id", client_order_id))
        if value is not None
    }
    token = _context.set(MappingProxyType({**_context.get(), **fields}))
    try:
        yield
    finally:
        _context.reset(token)


def current_log_context() -> dict[str, Any]:
    """The fields :func:`log_context` set for the code running now."""
    return dict(_context.get())


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (module doc)."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, tz=UTC)
        payload: dict[str, Any] = {
            "ts": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _context.get()
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is None:
                value = context.get(key)
            if value is not None:
                payload[key] = value
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            payload["exc_info"] = record.exc_text
        elif record.exc_text:
            payload["exc_info"] = record.exc_text
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)
