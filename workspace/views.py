"""The order timeline page of the admin (docs/design.md section 7): thin, the story is assembled by
:func:`workspace.timeline.order_timeline`."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

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
