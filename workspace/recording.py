"""The workspace's pages on the access log (docs/design.md section 19), in one place.

:func:`recorded_view` wraps a page function (the timeline); :class:`RecordedAccessMixin` (part of
every audit list, :class:`workspace.admin.site.AuditListMixin`) records an object's page when the
admin names what it is (``access_what``), every CSV export, and every list shown with a search or
a filter. Only what was shown is recorded: a refused or missing page (403, 404) is not a view.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse

from audit.access import access_record
from audit.models import AccessRecord

#: Query parameters that only page or sort a list: a list with nothing else is not recorded.
_NAVIGATION = frozenset({"p", "o", "all", "_changelist_filters"})


def recorded_view(what: AccessRecord.What, object_kwarg: str) -> Callable:
    """Decorate a page function: a page shown (status 200) is recorded as a view of ``what``,
    the object named by the URL argument ``object_kwarg``."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            response = view(request, *args, **kwargs)
            if response.status_code == 200:
                access_record(request=request, what=what, object_id=kwargs.get(object_kwarg, ""))
            return response

        return wrapper

    return decorate


def _model_label(model_admin) -> str:
    return model_admin.model._meta.label_lower


class RecordedAccessMixin:
    """For a ModelAdmin: its object pages, exports and searched lists on the access log."""

    #: What an object page of this admin is (None: its pages are not recorded one by one).
    access_what: AccessRecord.What | None = None

    def change_view(self, request: HttpRequest, object_id: str, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        if self.access_what and request.method == "GET" and response.status_code == 200:
            access_record(
                request=request,
                what=self.access_what,
                object_id=self.access_object_id(object_id),
            )
        return response

    def access_object_id(self, object_id: str) -> str:
        """How the record names the object whose page ``object_id`` is (its primary key)."""
        return object_id

    def record_export(self, request: HttpRequest, response: HttpResponse) -> None:
        if response.status_code == 200:
            access_record(
                request=request, what=AccessRecord.What.EXPORT, object_id=_model_label(self)
            )

    def record_list(self, request: HttpRequest, response: HttpResponse) -> None:
        if (
            request.method == "GET"
            and response.status_code == 200
            and set(request.GET) - _NAVIGATION
        ):
            access_record(
                request=request, what=AccessRecord.What.LIST, object_id=_model_label(self)
            )
