"""CSV export of an audit list, exactly as the list shows it (docs/design.md section 7).

The rows are the change list's own queryset (its search, filters, date range and ordering, built
by the ModelAdmin's ChangeList machinery, so the export cannot disagree with the page), all of
them rather than one page; the columns are the list's ``list_display`` with its header labels.
Values are plain: timestamps in ISO 8601 UTC, quantities without trailing zeros, booleans as
``true``/``false``, choices by their label, related rows by their name, HTML stripped to its
text. A column that is only navigation (the same link on every row, like "timeline") is left
out: it tells nothing about the row. A text
cell that a spreadsheet would read as a formula (starting with ``= + - @``, a tab or a carriage
return) is prefixed with ``'``; numbers the export formats itself are left as they are. Every
text cell is quoted, so a spreadsheet that splits at ``;`` or a tab (not only ``,``) never cuts
``x;=1+1`` into a formula cell; an empty value (the admin's ``-``) is an empty cell.

The response streams: rows come from a server-side cursor in chunks (``iterator(chunk_size)``
inside a transaction, so PostgreSQL does not materialise the whole result first) and leave as CSV
text chunk by chunk, so memory stays flat whatever the number of rows. On SQLite, where an open
read holds a lock that writers wait for, the rows are read at once to a file on disk and sent
from there: a download the client stops reading never blocks a writer. When every column is a
field, rows are read as plain tuples (no model instance per row; a foreign key's names fetched
once per chunk); otherwise as instances loading only the fields the columns read.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.contrib.admin import ModelAdmin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import get_fields_from_path, label_for_field
from django.core.exceptions import FieldDoesNotExist, FieldError, PermissionDenied
from django.db import connections, models, transaction
from django.db.models import CharField, F, Func, QuerySet
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone
from django.utils.safestring import SafeData
from django.utils.text import capfirst

from brokerops.fields import ExactDecimalField
from workspace.cells import csv_cell, csv_writer, text_cell
from workspace.filters import DateRangeFilter

# Rows fetched per round trip of the server-side cursor, and per chunk of CSV text sent.
EXPORT_CHUNK_ROWS = 2000
# Set on the request by the export view: the change list it builds runs no count and no page.
EXPORT_REQUEST_FLAG = "_brokerops_csv_export"
# Field types whose raw value a display callable sorting by that field stands for.
RAW_VALUE_FIELDS = (
    models.DateField,
    models.DecimalField,
    ExactDecimalField,
    models.FloatField,
    models.IntegerField,
)
# A cell that is nothing but one link (group 1: its text).
SINGLE_LINK = re.compile(r"\s*<a\s[^>]*>([^<]*)</a>\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Column:
    """One exported column: its header label and how to get its value from a row.

    ``field`` is set when the column is a concrete field of the listed model (a related row by
    its name, for a foreign key), so the export may read it from plain rows instead of model
    instances; ``path`` when that field is a parent row's (``attempt__account``: a display
    callable naming it in ``plain_value_of``); ``display`` when the column is a display
    callable (it may be navigation).
    """

    label: str
    value: Callable[[models.Model], Any]
    field: models.Field | None = None
    display: bool = False
    path: str | None = None

    @property
    def source(self) -> str:
        """What a plain read selects for the column."""
        return self.path or self.field.attname


def _field_value(field: models.Field) -> Callable[[models.Model], Any]:
    if field.is_relation and (field.many_to_one or field.one_to_one):
        name = field.name

        def related(obj: models.Model) -> Any:
            target = getattr(obj, name, None)
            return None if target is None else str(target)

        return related
    attname = field.attname
    if field.flatchoices:
        labels = {value: str(label) for value, label in field.flatchoices}
        return lambda obj: labels.get(getattr(obj, attname), getattr(obj, attname))
    return lambda obj: getattr(obj, attname)


def _raw_field(opts, display: Any) -> models.Field | None:
    """The model field a display callable only renders (its ``ordering`` names a local date,
    decimal or number column): the export writes that field's value in the export's format."""
    order = getattr(display, "admin_order_field", None)
    if isinstance(order, Cast) and isinstance(order.source_expressions[0], F):
        order = order.source_expressions[0].name  # a text column sorted by its number
    if not isinstance(order, str) or "__" in order:
        return None
    try:
        field = opts.get_field(order.lstrip("-"))
    except FieldDoesNotExist:
        return None
    if field.concrete and not field.is_relation and isinstance(field, RAW_VALUE_FIELDS):
        return field
    return None


def _parent_field(model: type[models.Model], display: Any) -> tuple[models.Field, str] | None:
    """The field and path of a display callable that shows a parent row's field as it is: it
    names the path in ``plain_value_of`` (``"attempt__account"``), so plain rows read it."""
    path = getattr(display, "plain_value_of", None)
    if not isinstance(path, str):
        return None
    return get_fields_from_path(model, path)[-1], path


def _display_column(opts, label: str, display: Any) -> Column:
    parent = _parent_field(opts.model, display)
    if parent:
        return Column(label, display, field=parent[0], path=parent[1])
    raw = _raw_field(opts, display)
    if raw:
        return Column(label, _field_value(raw), field=raw)
    return Column(label, display, display=True)


def _column(model_admin: ModelAdmin, name: Any, label: str) -> Column:
    """How the list gets column ``name`` of a row (the order of Django's ``lookup_field``)."""
    opts = model_admin.model._meta
    if callable(name):
        return _display_column(opts, label, name)
    if name == "__str__":
        return Column(label, str)
    try:
        field = opts.get_field(name)
    except FieldDoesNotExist:
        field = None
    if field is not None and field.concrete:
        return Column(label, _field_value(field), field=field)
    method = getattr(model_admin, name, None)
    if callable(method):
        return _display_column(opts, label, method)

    def attribute(obj: models.Model) -> Any:
        value = getattr(obj, name)
        return value() if callable(value) else value

    return Column(label, attribute)


def export_columns(model_admin: ModelAdmin, list_display: Sequence[Any]) -> list[Column]:
    """The list's columns (not its selection checkbox) with the labels of its header row."""
    return [
        _column(
            model_admin,
            name,
            str(capfirst(label_for_field(name, model_admin.model, model_admin))),
        )
        for name in list_display
        if name != "action_checkbox"
    ]


def is_navigation(cells: Sequence[Any]) -> bool:
    """True for a column whose cells are all one link with the same text (the timeline's
    "timeline"): it leads somewhere and tells nothing about the row."""
    texts = set()
    for cell in cells:
        if not isinstance(cell, SafeData):
            return False
        match = SINGLE_LINK.fullmatch(str(cell))
        if match is None:
            return False
        texts.add(match.group(1))
    return len(texts) == 1


class _RelatedNames:
    """The names (``str()``) of the rows a foreign key column points to, fetched a chunk of keys
    at a time, loading only the fields their ``__str__`` reads, and kept for the next rows."""

    keep = 50_000

    def __init__(self, field: models.ForeignKey) -> None:
        self.model = field.related_model
        self.target = field.target_field
        self.names: dict[Any, str] = {}
        self.fields: list[str] | None = None

    def fetch(self, keys: set[Any]) -> None:
        missing = [k for k in keys if k is not None and k not in self.names]
        if not missing:
            return
        if len(self.names) > self.keep:
            self.names.clear()
        rows = self.model._base_manager.filter(**{f"{self.target.name}__in": missing})
        if self.fields is None:
            sample = rows.only(self.model._meta.pk.name, self.target.name).first()
            str(sample)  # what it reads is loaded, and so recorded
            self.fields = sorted(_loaded_fields(sample) | {self.target.name})
        for obj in rows.only(*self.fields):
            self.names[getattr(obj, self.target.attname)] = str(obj)

    def __call__(self, key: Any) -> str | None:
        return None if key is None else self.names.get(key)


def _batches(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# PostgreSQL writes a timestamp exactly as cells.iso_utc does, saving its parse and format
# per cell.
PG_ISO_UTC = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


def _plain_formatter(field: models.Field, *, in_sql: bool) -> Callable[[Any], Any]:
    """What turns one stored value of ``field`` into its cell (the rules of :func:`csv_cell`,
    picked once per column instead of per value)."""
    if in_sql:
        return text_cell  # already ISO text (or NULL)
    if field.flatchoices:
        labels = {value: str(label) for value, label in field.flatchoices}
        return lambda value: text_cell(labels.get(value, value))
    if isinstance(field, models.CharField | models.TextField):
        return text_cell
    if isinstance(field, models.IntegerField | models.AutoField):
        return lambda value: "" if value is None else value  # the csv module writes ints
    return csv_cell


def plain_rows(
    queryset: QuerySet, columns: Sequence[Column], *, chunk_rows: int = EXPORT_CHUNK_ROWS
) -> Iterator[list[list[str]]]:
    """Chunks of CSV rows read as plain tuples (``values_list``), for columns that are all
    fields: no model instance per row; related rows' names fetched once per chunk; on
    PostgreSQL, timestamps written as ISO text by the database."""
    on_postgresql = connections[queryset.db].vendor == "postgresql"
    selected: dict[str, int] = {}  # what is read (a field, or a timestamp's ISO text) -> position
    in_sql: dict[str, Func] = {}
    converters: list[tuple[int, Callable[[Any], Any]]] = []
    related: list[tuple[int, _RelatedNames]] = []
    for column in columns:
        field = column.field
        iso_in_sql = on_postgresql and isinstance(field, models.DateTimeField)
        name = f"_export_iso_{column.source}" if iso_in_sql else column.source
        if iso_in_sql:
            in_sql[name] = Func(F(column.source), template=PG_ISO_UTC, output_field=CharField())
        position = selected.setdefault(name, len(selected))
        if field.is_relation:
            names = _RelatedNames(field)
            related.append((position, names))
            converters.append((position, lambda key, names=names: text_cell(names(key))))
        else:
            converters.append((position, _plain_formatter(field, in_sql=iso_in_sql)))
    rows = queryset.annotate(**in_sql).values_list(*selected).iterator(chunk_size=chunk_rows)
    for chunk in _batches(rows, chunk_rows):
        for position, names in related:
            names.fetch({row[position] for row in chunk})
        yield [[convert(row[position]) for position, convert in converters] for row in chunk]


def instance_rows(
    queryset: QuerySet, columns: Sequence[Column], *, chunk_rows: int = EXPORT_CHUNK_ROWS
) -> Iterator[list[list[str]]]:
    """Chunks of CSV rows computed from model instances (display callables need them)."""
    getters = [column.value for column in columns]
    rows = queryset.iterator(chunk_size=chunk_rows)
    for chunk in _batches(rows, chunk_rows):
        yield [[csv_cell(get(obj)) for get in getters] for obj in chunk]


@dataclass(frozen=True)
class ExportPlan:
    columns: list[Column]
    queryset: QuerySet
    plain: bool  # read as plain tuples (every column a field)

    def chunks(self, *, chunk_rows: int = EXPORT_CHUNK_ROWS) -> Iterator[list[list[str]]]:
        read = plain_rows if self.plain else instance_rows
        return read(self.queryset, self.columns, chunk_rows=chunk_rows)


def export_plan(
    queryset: QuerySet, columns: Sequence[Column], *, probe_rows: int = 50
) -> ExportPlan:
    """How to export ``queryset``: navigation columns left out (found on the first rows), then
    plain tuples when every column is a field, else instances loading only what is read."""
    columns = list(columns)
    displays = [column for column in columns if column.display]
    if displays:
        probe = list(queryset[:probe_rows])
        columns = [
            column
            for column in columns
            if not (column.display and probe and is_navigation([column.value(o) for o in probe]))
        ]
    if all(column.field is not None for column in columns):
        return ExportPlan(columns=columns, queryset=queryset, plain=True)
    return ExportPlan(columns=columns, queryset=columns_read_only(queryset, columns), plain=False)


def csv_chunks(*, plan: ExportPlan, chunk_rows: int = EXPORT_CHUNK_ROWS) -> Iterator[str]:
    """The header row, then the rows of ``plan`` as CSV text, ``chunk_rows`` at a time."""
    out = io.StringIO()
    writer = csv_writer(out)

    def flush() -> str:
        text = out.getvalue()
        out.seek(0)
        out.truncate()
        return text

    writer.writerow([column.label for column in plan.columns])
    yield flush()
    db = plan.queryset.db
    if connections[db].vendor == "sqlite":
        yield from _read_whole_then_send(plan, writer, flush, chunk_rows)
        return
    # In a transaction, PostgreSQL's server-side cursor streams (outside one it is declared
    # WITH HOLD and the whole result is materialised before the first row); its reads take no
    # lock a writer waits for, so a client that stops reading holds up no one.
    with transaction.atomic(using=db):
        for rows in plan.chunks(chunk_rows=chunk_rows):
            writer.writerows(rows)
            yield flush()


def _read_whole_then_send(
    plan: ExportPlan, writer: Any, flush: Callable[[], str], chunk_rows: int
) -> Iterator[bytes]:
    """SQLite: read every row at once into a file on disk, then send it chunk by chunk.

    A transaction here begins with the write lock (``transaction_mode`` IMMEDIATE), and even a
    plain read keeps a shared lock that a writer's commit waits for while its statement is open:
    read lazily, a client that stops reading would hold the database until the writer gives up
    ("database is locked"). The read runs without a transaction (one statement: one consistent
    view) and ends before the first row is sent, so a stalled download holds nothing; memory
    stays flat (the rows wait on disk, not in memory).
    """
    ends: list[int] = []
    with tempfile.TemporaryFile() as spool:
        for rows in plan.chunks(chunk_rows=chunk_rows):
            writer.writerows(rows)
            spool.write(flush().encode("utf-8"))
            ends.append(spool.tell())
        spool.seek(0)
        start = 0
        for end in ends:
            yield spool.read(end - start)
            start = end


def _select_related_paths(tree: dict, prefix: str = "") -> list[str]:
    paths = []
    for name, below in tree.items():
        path = f"{prefix}{name}"
        paths.append(path)
        paths.extend(_select_related_paths(below, f"{path}__"))
    return paths


def _model_at(model: type[models.Model], path: str) -> type[models.Model]:
    for name in path.split("__"):
        model = model._meta.get_field(name).related_model
    return model


def _related_instance(obj: models.Model, path: str) -> models.Model | None:
    for name in path.split("__"):
        obj = obj._state.fields_cache.get(name) if obj is not None else None
    return obj


def _loaded_fields(obj: models.Model) -> set[str]:
    deferred = obj.get_deferred_fields()
    return {f.name for f in obj._meta.concrete_fields if f.attname not in deferred}


def columns_read_only(
    queryset: QuerySet, columns: Sequence[Column], *, probe_rows: int = 50
) -> QuerySet:
    """``queryset`` loading only the fields the columns read, as a probe finds them.

    A JSON payload or a dozen columns the list does not show cost more to fetch and build than
    the row's CSV. The probe evaluates the columns on the first ``probe_rows`` rows loaded with
    nothing but their keys: each field a column (or a related row's ``__str__``) reads is loaded
    on access, and recorded. A row that reads a field the probe did not see still gets it (one
    query for that row), so the result is the same whatever the columns do; only speed depends
    on the probe. Returns ``queryset`` unchanged when its shape does not allow it.
    """
    tree = queryset.query.select_related
    if tree is True or not queryset.query.default_cols or queryset.query.values_select:
        return queryset
    paths = _select_related_paths(tree or {})
    try:
        keys = [
            queryset.model._meta.pk.name,
            *paths,
            *(f"{path}__{_model_at(queryset.model, path)._meta.pk.name}" for path in paths),
        ]
        probe = list(queryset.only(*keys)[:probe_rows])
    except (FieldDoesNotExist, FieldError, ValueError):
        return queryset
    if not probe:
        return queryset
    read = {"": set()}
    read.update({path: set() for path in paths})
    for obj in probe:
        for column in columns:
            column.value(obj)
        read[""] |= _loaded_fields(obj)
        for path in paths:
            related = _related_instance(obj, path)
            if related is not None:
                read[path] |= _loaded_fields(related)
    fields = [*keys, *read[""], *(f"{path}__{name}" for path in paths for name in read[path])]
    return queryset.only(*fields)


def export_filename(model: type[models.Model], *, now: datetime | None = None) -> str:
    moment = (now or timezone.now()).astimezone(UTC)
    opts = model._meta
    return f"{opts.app_label}-{opts.model_name}-{moment:%Y%m%dT%H%M%SZ}.csv"


def changelist_csv_response(*, model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    """The list ``request`` asks for (search, filters, ordering in its query string), all its
    rows, as a streamed CSV download; 403 without view permission, 400 for a bad filter."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    setattr(request, EXPORT_REQUEST_FLAG, True)
    try:
        changelist = model_admin.get_changelist_instance(request)
    except IncorrectLookupParameters as exc:
        return HttpResponseBadRequest(
            f"This list cannot be exported: its filters are not valid ({exc}).",
            content_type="text/plain; charset=utf-8",
        )
    problems = [
        spec.problem
        for spec in changelist.filter_specs
        if isinstance(spec, DateRangeFilter) and spec.problem
    ]
    if problems:
        return HttpResponseBadRequest(
            "Nothing exported: " + " ".join(problems), content_type="text/plain; charset=utf-8"
        )
    plan = export_plan(changelist.queryset, export_columns(model_admin, changelist.list_display))
    response = StreamingHttpResponse(
        csv_chunks(plan=plan),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{export_filename(model_admin.model)}"'
    response["Cache-Control"] = "no-store"
    return response


def export_changelist_class(changelist_class: type) -> type:
    """``changelist_class`` that neither counts nor pages: the export takes every row."""

    class ExportChangeList(changelist_class):
        def get_results(self, request: HttpRequest) -> None:
            self.result_count = None
            self.full_result_count = None
            self.result_list = self.queryset
            self.can_show_all = True
            self.multi_page = False
            self.show_admin_actions = False

    return ExportChangeList
