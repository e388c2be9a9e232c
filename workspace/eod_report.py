"""The end-of-day report as an admin page (docs/design.md section 17): the same data as the
e-mail (:func:`reconciliation.eod.eod_report`), of the accounts the user may see, for a day
(``?date=YYYY-MM-DD``, default: today in ``REPORT_TZ``), with each break linked to its page."""

from __future__ import annotations

from datetime import date, timedelta

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse

from reconciliation.eod import eod_report, report_day
from workspace.access import visible_accounts

#: Who may read the report: whoever may view breaks (compliance and operations, superusers).
REPORT_PERMISSION = "reconciliation.view_break"


def eod_report_view(request: HttpRequest) -> HttpResponse:
    """``/admin/eod-report/`` (wrapped in ``admin_site.admin_view``: staff login)."""
    if not request.user.has_perm(REPORT_PERMISSION):
        raise PermissionDenied
    today = report_day()
    day = today
    if asked := request.GET.get("date", "").strip():
        try:
            day = date.fromisoformat(asked)
        except ValueError:
            messages.warning(request, f"{asked!r} is not a date (YYYY-MM-DD): today is shown.")
    report = eod_report(day=day, accounts=visible_accounts(request.user))
    for line in (*report.overdue, *report.repaired):
        line.url = _break_url(line.id)
    context = {
        **admin.site.each_context(request),
        "title": f"End-of-day report {day}",
        "report": report,
        "previous_day": day - timedelta(days=1),
        "next_day": day + timedelta(days=1) if day < today else None,
        "hide_verification": not request.user.has_perm("audit.view_auditverification"),
    }
    return TemplateResponse(request, "admin/eod_report.html", context)


def _break_url(pk: int) -> str:
    try:
        return reverse("admin:reconciliation_break_change", args=[pk])
    except NoReverseMatch:  # the breaks pages are not registered
        return ""
