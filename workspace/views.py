"""The order timeline page of the admin (docs/design.md section 7): thin, the story is assembled by
:func:`workspace.timeline.order_timeline`."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme

from audit.models import AccessRecord
from workspace.access import visible_accounts
from workspace.recording import recorded_view
from workspace.timeline import order_timeline

#: Who may read a timeline: whoever may view order attempts (groups ``compliance`` and
#: ``operations``, superusers).
TIMELINE_PERMISSION = "orders.view_orderattempt"


@recorded_view(AccessRecord.What.TIMELINE, "client_order_id")
def order_timeline_view(request: HttpRequest, client_order_id: str) -> HttpResponse:
    """``/admin/timeline/<client_order_id>/`` (wrapped in ``admin_site.admin_view``: staff
    login)."""
    if not request.user.has_perm(TIMELINE_PERMISSION):
        raise PermissionDenied
    timeline = order_timeline(
        client_order_id=client_order_id,
        signal_id=request.GET.get("signal", ""),
        visible=visible_accounts(request.user),
    )
    if timeline is None:
        raise Http404(f"nothing is recorded about {client_order_id!r}")
    context = {
        **admin.site.each_context(request),
        "title": f"Timeline of {client_order_id}",
        "timeline": timeline,
    }
    return TemplateResponse(request, "admin/order_timeline.html", context)


def _error_page(request: HttpRequest, *, status: int, title: str, why: str) -> HttpResponse:
    """A 403 or 404 inside the admin's frame, with a way back (the page the reader came from,
    when it is this site's, and the admin's home)."""
    back = request.META.get("HTTP_REFERER", "")
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = ""
    context = {
        **admin.site.each_context(request),
        "title": title,
        "why": why,
        "back_url": back,
        "status": status,
    }
    response = TemplateResponse(request, "admin/error_page.html", context, status=status)
    return response.render()


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler403`` (brokerops/urls.py): the page names what is missing, never why in code."""
    return _error_page(
        request,
        status=403,
        title="You may not see this page",
        why=str(exception or "")
        or "Your account has no permission for it: ask an administrator for access.",
    )


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler404`` (brokerops/urls.py): what was not found, when the view said so."""
    said = exception.args[0] if exception is not None and exception.args else ""
    # A view's own sentence ("nothing is recorded about ..."); not the resolver's details (a
    # dict) nor get_object_or_404's model class name.
    why = said if isinstance(said, str) and "matches the given query" not in said else ""
    return _error_page(
        request,
        status=404,
        title="Nothing here",
        why=why
        or "There is no page at this address: the row may not exist, or the link is mistyped.",
    )
