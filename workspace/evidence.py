"""The evidence pack download of the admin (docs/design.md section 19): ``/admin/evidence/``, a
form for one client order id, one break, or a range of days (one account, or every account the
user may see), then the zip, recorded on the access log. Behind ``audit.download_evidence``; an
unknown order id or break (or another account's) is a 404, a bad range a 400 naming why;
neither writes anything.
"""

from __future__ import annotations

import tempfile
from datetime import date

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from audit.access import access_record
from audit.models import AccessRecord
from evidence.pack import evidence_pack_write
from evidence.scope import MAX_RANGE_DAYS, EvidenceError, NotFound, Scope
from workspace.access import visible_accounts

EVIDENCE_PERMISSION = "audit.download_evidence"


def _day(text: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise EvidenceError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _number(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise EvidenceError(f"a break is named by its number, not {text!r}")
    return int(text)


def evidence_view(request: HttpRequest) -> HttpResponse:
    """The form (no parameters), or the pack the parameters ask for."""
    if not request.user.has_perm(EVIDENCE_PERMISSION):
        raise PermissionDenied
    params = {
        name: request.GET.get(name, "").strip()
        for name in ("order", "break", "from", "to", "account")
    }
    if not any(params.values()):
        return _form(request, params)
    try:
        scope = Scope(
            order=params["order"],
            break_id=_number(params["break"]),
            start=_day(params["from"]),
            end=_day(params["to"]),
            account=params["account"],
            visible=visible_accounts(request.user),
        )
        pack = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the response, which closes it
        try:
            evidence_pack_write(scope=scope, out=pack, created_by=request.user.get_username())
        except BaseException:
            pack.close()
            raise
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    except EvidenceError as exc:
        return _form(request, params, problem=str(exc), status=400)
    access_record(
        request=request, what=AccessRecord.What.EVIDENCE, object_id=scope.order or scope.slug()
    )
    pack.seek(0)
    return FileResponse(
        pack,
        as_attachment=True,
        filename=f"evidence-{scope.slug()}.zip",
        content_type="application/zip",
    )


def _form(request: HttpRequest, params: dict, *, problem: str = "", status: int = 200):
    context = {
        **admin.site.each_context(request),
        "title": "Evidence pack",
        "params": params,
        "problem": problem,
        "max_days": MAX_RANGE_DAYS,
    }
    return TemplateResponse(request, "admin/evidence_form.html", context, status=status)
