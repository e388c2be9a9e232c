"""The audit lists' date filter: a range of days, from and to (both inclusive, UTC).

Replaces the admin's "Today / Past 7 days / This month" links on the date columns of every
audit list (:meth:`workspace.admin.site.AuditListMixin.get_list_filter` maps the date entries of
``list_filter`` to :class:`DateRangeFilter`). The query string carries ``<field>__from`` and
``<field>__to`` as ``YYYY-MM-DD``; the filter becomes ``from <= field < to + 1 day`` on the
indexed column. Input that is not a date, or a range that ends before it starts, filters nothing:
the filter keeps the problem in :attr:`DateRangeFilter.problem` for the list to show as a message
(and the export to refuse), never a server error.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import NotRelationField, get_fields_from_path
from django.core.exceptions import FieldDoesNotExist
from django.db import connections, models, router
from django.db.models import QuerySet
from django.http import HttpRequest

from workspace.access import may_see, visible_accounts


def parse_day(text: str) -> date:
    """``YYYY-MM-DD`` (what a browser's date input sends) as a date; ValueError otherwise."""
    text = text.strip()
    if len(text) != 10:
        raise ValueError(text)
    return date.fromisoformat(text)


def day_range_bounds(
    *, start: date | None, end: date | None
) -> tuple[datetime | None, datetime | None]:
    """UTC instants ``[start 00:00, end + 1 day 00:00)`` for an inclusive range of days."""
    low = datetime.combine(start, time.min, tzinfo=UTC) if start else None
    high = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC) if end else None
    return low, high


class DateRangeFilter(admin.FieldListFilter):
    """From / to date inputs for one date or datetime column (inclusive days, UTC)."""

    template = "admin/brokerops/date_range_filter.html"

    def __init__(self, field, request, params, model, model_admin, field_path):
        self.parameter_from = f"{field_path}__from"
        self.parameter_to = f"{field_path}__to"
        self.problem = ""
        super().__init__(field, request, params, model, model_admin, field_path)
        self.value_from = self._text(self.parameter_from)
        self.value_to = self._text(self.parameter_to)
        self.start, self.end = self._parse()

    def _text(self, parameter: str) -> str:
        values = self.used_parameters.get(parameter) or [""]
        value = values[-1] if isinstance(values, list) else values
        return str(value).strip()

    def _parse(self) -> tuple[date | None, date | None]:
        label = str(self.title)
        parsed: dict[str, date | None] = {}
        for name, text in (("from", self.value_from), ("to", self.value_to)):
            if not text:
                parsed[name] = None
                continue
            try:
                parsed[name] = parse_day(text)
            except ValueError:
                self.problem = (
                    f'The {label} "{name}" date "{text}" is not a date (YYYY-MM-DD): '
                    "the list is not filtered by it."
                )
                return None, None
        start, end = parsed["from"], parsed["to"]
        if start and end and start > end:
            self.problem = (
                f"The {label} range ends ({end}) before it starts ({start}): "
                "the list is not filtered by it."
            )
            return None, None
        return start, end

    def expected_parameters(self) -> list[str]:
        return [self.parameter_from, self.parameter_to]

    @property
    def is_active(self) -> bool:
        return bool(self.start or self.end)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        low, high = day_range_bounds(start=self.start, end=self.end)
        if isinstance(self.field, models.DateTimeField):
            if low:
                queryset = queryset.filter(**{f"{self.field_path}__gte": low})
            if high:
                queryset = queryset.filter(**{f"{self.field_path}__lt": high})
            return queryset
        if self.start:
            queryset = queryset.filter(**{f"{self.field_path}__gte": self.start})
        if self.end:
            queryset = queryset.filter(**{f"{self.field_path}__lte": self.end})
        return queryset

    def get_facet_counts(self, pk_attname: str, filtered_qs: QuerySet) -> dict[str, Any]:
        return {}  # no per-choice counts: the range is typed, not chosen

    def choices(self, changelist) -> Iterator[dict[str, Any]]:
        """One entry: what the template needs to draw the form (the other parameters of the
        list ride along as hidden inputs, the page number does not)."""
        own = {self.parameter_from, self.parameter_to, "p"}
        hidden = [
            (key, value)
            for key, values in getattr(changelist, "filter_params", changelist.params).items()
            if key not in own
            for value in (values if isinstance(values, list) else [values])
        ]
        yield {
            "selected": self.is_active,
            "query_string": changelist.get_query_string(
                remove=[self.parameter_from, self.parameter_to]
            ),
            "display": "Any date",
            "hidden": hidden,
        }


def date_range_list_filter(model: type[models.Model], entries) -> list:
    """``entries`` (a ``list_filter``) with every date or datetime column filtered by range."""
    mapped = []
    for entry in entries:
        field_path, filter_class = (
            (entry[0], entry[1]) if isinstance(entry, list | tuple) else (entry, None)
        )
        replaceable = filter_class is None or (
            isinstance(filter_class, type) and issubclass(filter_class, admin.DateFieldListFilter)
        )
        if replaceable and isinstance(field_path, str) and _is_date_path(model, field_path):
            mapped.append((field_path, DateRangeFilter))
        else:
            mapped.append(entry)
    return mapped


def _is_date_path(model: type[models.Model], field_path: str) -> bool:
    try:
        field = get_fields_from_path(model, field_path)[-1]
    except (FieldDoesNotExist, NotRelationField):
        return False
    return isinstance(field, models.DateField)  # DateTimeField is a DateField


# The distinct values of an indexed column without reading every row: one index probe per value
# (a "skip scan"; PostgreSQL and SQLite both plan ``min()`` over an index as a probe).
_SKIP_SCAN_SQL = """
WITH RECURSIVE present(name) AS (
    SELECT min({column}) FROM {table}
    UNION ALL
    SELECT (SELECT min({column}) FROM {table} WHERE {column} > present.name)
    FROM present WHERE present.name IS NOT NULL
)
SELECT name FROM present WHERE name IS NOT NULL
"""


def accounts_present(model: type[models.Model], column: str = "account") -> list[str]:
    """The accounts rows of ``model`` belong to (its indexed ``column``), in order."""
    connection = connections[router.db_for_read(model)]
    quote = connection.ops.quote_name
    field = model._meta.get_field(column)
    sql = _SKIP_SCAN_SQL.format(table=quote(model._meta.db_table), column=quote(field.column))
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


class AccountListFilter(admin.AllValuesFieldListFilter):
    """The account filter of an audit list (docs/design.md section 16): the accounts rows are
    present for (read from the table holding the account column: the attempts for events and
    fills, the runs for run events), only those the user may see (:mod:`workspace.access`).

    Use as ``("account", AccountListFilter)`` or ``("attempt__account", AccountListFilter)``."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        visible = visible_accounts(request.user)
        self.lookup_choices = [
            name for name in accounts_present(field.model, field.name) if may_see(visible, name)
        ]
        self.title = "account"
