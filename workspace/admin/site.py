"""The admin site's titles, and the building blocks shared by the audit lists of every app."""

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import DateTimeField, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.urls import path, reverse

from workspace.access import only_visible, visible_accounts
from workspace.display import when
from workspace.export import (
    EXPORT_REQUEST_FLAG,
    changelist_csv_response,
    export_changelist_class,
)
from workspace.filters import DateRangeFilter, date_range_list_filter
from workspace.pagination import EstimatedCountPaginator
from workspace.recording import RecordedAccessMixin

admin.site.site_header = "brokerops audit trail"
admin.site.site_title = "brokerops"
admin.site.index_title = "Reconciliation runs, mismatches and order attempts"


def _timestamp_getter(field: str, description: str):
    """``obj -> when(obj.<field>)`` with the admin's label and sort (an instance attribute of
    the admin: Django calls it with the row alone)."""

    def show(obj) -> str:
        return when(getattr(obj, field))

    show.short_description = description
    show.admin_order_field = field  # the export writes the stored value (ISO 8601 UTC)
    show.__name__ = f"{field}_display"
    return show


class TimestampColumnsMixin:
    """Every timestamp column and read-only field of the model shown by
    :func:`workspace.display.when` (to the millisecond, the viewer's zone, the zone named), for
    a ModelAdmin or an inline: ``created_at`` in ``list_display`` or ``fields`` is shown as
    ``created_at_display``; filters, search and ordering keep the field."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self._timestamp_names: dict[str, str] = {}
        for field in self.model._meta.concrete_fields:  # type: ignore[attr-defined]
            if isinstance(field, DateTimeField):
                shown = f"{field.name}_display"
                self._timestamp_names[field.name] = shown
                if not hasattr(self, shown):
                    setattr(self, shown, _timestamp_getter(field.name, str(field.verbose_name)))

    def _timestamped(self, names):
        return [self._timestamp_names.get(n, n) if isinstance(n, str) else n for n in names]

    def get_list_display(self, request: HttpRequest):
        return self._timestamped(super().get_list_display(request))  # type: ignore[misc]

    def get_fields(self, request: HttpRequest, obj=None):
        return self._timestamped(super().get_fields(request, obj))  # type: ignore[misc]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return self._timestamped(super().get_readonly_fields(request, obj))  # type: ignore[misc]


class NoEditHistoryMixin:
    """No "History" button on a row nobody edits through the admin (its list of admin edits is
    always empty): the button is gone, and its address leads to the row's own page, where its
    events are shown."""

    def render_change_form(self, request: HttpRequest, context, *args, **kwargs):
        context["no_edit_history"] = True
        return super().render_change_form(request, context, *args, **kwargs)  # type: ignore[misc]

    def history_view(self, request: HttpRequest, object_id: str, extra_context=None):
        """The row's own page, for whoever may see the row (anyone else: as its page answers)."""
        obj = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if obj is None:
            raise Http404(f"No {self.model._meta.verbose_name} {object_id!r} to show.")  # type: ignore[attr-defined]
        if not self.has_view_or_change_permission(request, obj):  # type: ignore[attr-defined]
            raise PermissionDenied
        opts = self.model._meta  # type: ignore[attr-defined]
        return HttpResponseRedirect(
            reverse(
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change",  # type: ignore[attr-defined]
                args=[quote(object_id)],
            )
        )


#: What an exact search that found nothing says (an audit list may name its own ids).
SEARCH_HINT = (
    "Searches match whole ids: try the full client order id (or the full signal id, Alpaca "
    "order id or account name); a symbol may be typed in any case."
)


class AuditListMixin(RecordedAccessMixin, NoEditHistoryMixin, TimestampColumnsMixin):
    """What every audit list has (docs/design.md section 7), for any ModelAdmin:

    - an "Export CSV" button exporting what the list shows (search, filters, ordering), all
      rows, streamed (:mod:`workspace.export`), to whoever may view the list;
    - its date columns filtered by a typed range of days instead of fixed links
      (:class:`workspace.filters.DateRangeFilter`); bad input is a message, not an error;
    - pages that do not count a whole big table: an unfiltered list on PostgreSQL takes the
      planner's estimate (:class:`workspace.pagination.EstimatedCountPaginator`).
    """

    # Counting a million rows for "N total" on every page costs more than the page itself; so
    # do facet counts. The big audit tables filter by date with a typed range rather than
    # date_hierarchy, whose year links scan the whole table.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    search_hint = SEARCH_HINT
    paginator = EstimatedCountPaginator
    # Lists of fewer rows than this (as PostgreSQL estimates) are counted exactly.
    exact_count_below = EstimatedCountPaginator.exact_count_below
    # Searched or filtered lists are counted up to this many rows ("more than N" past it).
    count_cap = EstimatedCountPaginator.count_cap

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        if issubclass(self.paginator, EstimatedCountPaginator):
            return self.paginator(
                queryset,
                per_page,
                orphans,
                allow_empty_first_page,
                exact_count_below=self.exact_count_below,
                # Never below "show all" or a page: a capped count must still page the list
                # (a count under list_max_show_all would make the admin load every match).
                count_cap=max(self.count_cap, self.list_max_show_all, per_page),
            )
        return super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)

    def get_list_filter(self, request: HttpRequest):
        return date_range_list_filter(self.model, super().get_list_filter(request))

    def get_changelist(self, request: HttpRequest, **kwargs):
        changelist = super().get_changelist(request, **kwargs)
        if getattr(request, EXPORT_REQUEST_FLAG, False):
            return export_changelist_class(changelist)
        return changelist

    def _export_url_name(self) -> str:
        opts = self.model._meta
        return f"{opts.app_label}_{opts.model_name}_export"

    def get_urls(self):
        return [
            path(
                "export/",
                self.admin_site.admin_view(self.export_view),
                name=self._export_url_name(),
            ),
            *super().get_urls(),
        ]

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The list as CSV (GET, with the list's own query string; recorded on the access
        log)."""
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET"])
        response = changelist_csv_response(model_admin=self, request=request)
        self.record_export(request, response)
        return response

    def changelist_view(self, request: HttpRequest, extra_context=None):
        params = request.GET.copy()
        for name in ("p", "e", "all"):
            params.pop(name, None)
        url = reverse(f"{self.admin_site.name}:{self._export_url_name()}")
        context = {
            "audit_export_url": f"{url}?{params.urlencode()}" if params else url,
            "search_hint": self.search_hint if self.search_fields else "",  # type: ignore[attr-defined]
        }
        response = super().changelist_view(
            request, extra_context={**context, **(extra_context or {})}
        )
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        for spec in getattr(changelist, "filter_specs", ()):
            if isinstance(spec, DateRangeFilter) and spec.problem:
                self.message_user(request, spec.problem, messages.WARNING)
        self.record_list(request, response)
        return response


class ReadOnlyMixin:
    """Nobody adds, changes or deletes these rows through the admin, superusers included (for
    a ModelAdmin or an inline)."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class AccountScopedMixin:
    """The rows of an admin kept to the accounts the user may see (docs/design.md section 16,
    :mod:`workspace.access`), for any ModelAdmin of rows that belong to an account.

    Everything the admin builds on :meth:`get_queryset` follows: the list, its search, filters,
    counts and date hierarchy, its actions' selection, the export, the change and history pages.
    A row the user may not see is a 404, as a row that does not exist is (neither tells the
    other apart). The object a page shows carries the user's accounts (``_viewer_accounts``) for
    the read-only fields that look up other rows."""

    #: The account column, through a relation for rows that belong through their parent.
    account_path = "account"

    def scope_to_accounts(self, queryset: QuerySet, visible: frozenset[str] | None) -> QuerySet:
        return only_visible(queryset, visible, path=self.account_path)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        return self.scope_to_accounts(queryset, visible_accounts(request.user))

    def get_object(self, request: HttpRequest, object_id: str, from_field=None):
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if obj is None:  # not there, or another account's: one answer for both
            name = self.model._meta.verbose_name  # type: ignore[attr-defined]
            raise Http404(f"No {name} {object_id!r} to show.")
        obj._viewer_accounts = visible_accounts(request.user)
        return obj


def viewer_accounts(obj) -> frozenset[str] | None:
    """The accounts the user viewing ``obj``'s page may see (set by
    :meth:`AccountScopedMixin.get_object`); only ``obj``'s own when none was set."""
    default = frozenset({obj.account}) if hasattr(obj, "account") else frozenset()
    return getattr(obj, "_viewer_accounts", default)


class AuditTrailAdmin(AuditListMixin, ReadOnlyMixin, admin.ModelAdmin):
    """Read-only admin for append-mostly audit rows.

    Nobody adds, edits or deletes audit rows through the admin, superusers included: the rows are
    written by services. Staff see them with the model's ``view`` permission (group
    ``compliance``); operators' extra powers are admin actions guarded by custom permissions.
    """

    list_per_page = 50


class AuditTrailInline(TimestampColumnsMixin, ReadOnlyMixin, admin.TabularInline):
    """Read-only inline for audit rows shown under their parent."""

    extra = 0
    can_delete = False
    show_change_link = True
