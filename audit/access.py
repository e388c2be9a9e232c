"""The access log (docs/design.md section 19): who viewed or took which part of the trail.

:func:`access_records_append` is the one writer of :class:`~audit.models.AccessRecord` rows;
:func:`access_record` is what a page calls, with its request: the user, the path and the query
string (the search and filters) come from it. The workspace records through one mixin and one
decorator (:mod:`workspace.recording`); a page of its own (the breaks') calls
``access_record(request=request, what="break", object_id=str(pk))``.

Each record is its own short transaction appended at the end of the ``access_records`` chain:
called inside a longer transaction it would hold the chain's lock until that ends, so the views
record outside any (Django's views run in autocommit unless ATOMIC_REQUESTS is set).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from brokerops.text import db_text

from .chain import chain_append
from .models import AccessRecord

_QUERY_MAX = 4000  # a query string longer than this is cut (and says so)


def access_records_append(records: Iterable[AccessRecord]) -> list[AccessRecord]:
    """Store built records at the end of their chain (the one writer of the access log)."""
    return chain_append(records)


def access_record_build(
    *,
    user: str,
    what: AccessRecord.What | str,
    object_id: Any = "",
    path: str = "",
    query: str = "",
) -> AccessRecord:
    """An unsaved record (for :func:`access_records_append`); ``what`` must be a known kind."""
    return AccessRecord(
        username=db_text(user, max_length=150),
        what=AccessRecord.What(what),
        object_id=db_text(object_id, max_length=200),
        path=db_text(path, max_length=500),
        query=db_text(query, max_length=_QUERY_MAX),
    )


def access_record(
    *, request: Any, what: AccessRecord.What | str, object_id: Any = ""
) -> AccessRecord:
    """Record that ``request``'s user viewed or took ``what`` (``object_id``), with the page's
    path and its query string (the search and filters). One line for any page to call."""
    user = getattr(request, "user", None)
    name = user.get_username() if user is not None and user.is_authenticated else "anonymous"
    (record,) = access_records_append(
        [
            access_record_build(
                user=name,
                what=what,
                object_id=object_id,
                path=request.path,
                query=request.META.get("QUERY_STRING", ""),
            )
        ]
    )
    return record
