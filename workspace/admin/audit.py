"""Verification results, chain heads and schedule changes in the admin: read-only, like the rest
of the trail; django-celery-beat's admin replaced by one behind ``audit.change_schedule``."""

import logging

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html_join

from audit.access import access_record
from audit.chain import CHAINS
from audit.models import AccessRecord, AuditVerification, ChainHead, ScheduleChange
from audit.services import audit_verification_for, audit_verification_request
from audit.wording import (
    chain_label,
    unsigned_heads_callout,
    verification_headline,
    verification_sentences,
)
from workspace.admin import schedule
from workspace.admin.site import AuditTrailAdmin
from workspace.display import json_display

logger = logging.getLogger(__name__)
schedule.register(admin.site)


@admin.register(AuditVerification)
class AuditVerificationAdmin(AuditTrailAdmin):
    """Verifications, each read as a sentence per chain; "Verify now" (POST, behind
    ``audit.verify_audit``) asks a worker for one and follows it (docs/design.md section 19)."""

    list_display = (
        "started_at",
        "ok",
        "rows_checked",
        "heads_checked",
        "problems",
        "first_problem",
        "duration_display",
        "trigger",
        "requested_by",
    )
    list_filter = ("ok", "trigger", "started_at")
    fields = (
        "headline",
        "chains",
        "unsigned_heads",
        "notes",
        "started_at",
        "finished_at",
        "duration_display",
        "trigger",
        "requested_by",
        "first_problem",
    )
    readonly_fields = fields

    @admin.display(description="duration (s)")
    def duration_display(self, verification: AuditVerification) -> str:
        return f"{verification.duration_s:.2f}"

    @admin.display(description="asked for by")
    def requested_by(self, verification: AuditVerification) -> str:
        return (verification.report or {}).get("requested_by") or "-"

    @admin.display(description="result")
    def headline(self, verification: AuditVerification) -> str:
        return verification_headline(verification)

    @admin.display(description="per chain")
    def chains(self, verification: AuditVerification) -> str:
        return format_html_join(
            "",
            '<p class="chain-sentence {}">{}</p>',
            (
                ("intact" if s.ok else "broken", s.text)
                for s in verification_sentences(verification)
            ),
        )

    @admin.display(description="unsigned heads")
    def unsigned_heads(self, verification: AuditVerification) -> str:
        return unsigned_heads_callout(verification) or "none: every recorded head is signed"

    @admin.display(description="notes")
    def notes(self, verification: AuditVerification) -> str:
        return "; ".join((verification.report or {}).get("notes", [])) or "-"

    def has_verify_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("audit.verify_audit")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("verify/", view(self.verify_view), name="audit_verify_now"),
            path("verify/<str:request_id>/", view(self.follow_view), name="audit_verify_follow"),
            *super().get_urls(),
        ]

    def verify_view(self, request: HttpRequest) -> HttpResponse:
        """The "Verify now" button (POST only, ``audit.verify_audit`` only): recorded, then sent
        to a worker."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_verify_permission(request):
            raise PermissionDenied
        with transaction.atomic():
            request_id = audit_verification_request(requested_by=request.user.get_username())
        access_record(request=request, what=AccessRecord.What.VERIFY, object_id=request_id)
        return HttpResponseRedirect(reverse("admin:audit_verify_follow", args=[request_id]))

    def follow_view(self, request: HttpRequest, request_id: str) -> HttpResponse:
        """The requested verification's page once it is done; until then a page that reloads."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        verification = audit_verification_for(request_id)
        if verification is not None:
            return HttpResponseRedirect(
                reverse("admin:audit_auditverification_change", args=[verification.pk])
            )
        failure = verification_request_failure(request_id)
        context = {
            **self.admin_site.each_context(request),
            "title": "Verification failed" if failure else "Verifying the audit trail",
            "failure": failure,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/audit/verify_follow.html", context)


class ChainFilter(admin.SimpleListFilter):
    """The chains by name in words (every chain, whether it has heads yet or not)."""

    title = "chain"
    parameter_name = "chain"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [(spec.name, chain_label(spec.name)) for spec in CHAINS]

    def queryset(self, request: HttpRequest, queryset):
        return queryset.filter(chain=self.value()) if self.value() else queryset


@admin.register(ChainHead)
class ChainHeadAdmin(AuditTrailAdmin):
    list_display = ("recorded_at", "chain_name", "row_id", "hash", "signed", "recorded_by")
    list_filter = (ChainFilter, "recorded_at")

    @admin.display(description="chain", ordering="chain")
    def chain_name(self, head: ChainHead) -> str:
        return chain_label(head.chain)

    search_fields = ("=row_id", "hash__exact")
    search_hint = "Searches match a row number or a whole hash."

    @admin.display(boolean=True, description="signed")
    def signed(self, head: ChainHead) -> bool:
        return bool(head.signature)


@admin.register(ScheduleChange)
class ScheduleChangeAdmin(AuditTrailAdmin):
    """Who changed the beat schedule, what, and what it was before and after (view-only for
    everyone: the rows are written by :mod:`audit.schedule`)."""

    list_display = ("created_at", "actor", "action", "object_type", "object_name", "changes")
    list_filter = ("action", "object_type", "created_at")
    search_fields = ("object_name", "actor__exact")
    fields = (
        "created_at",
        "actor",
        "action",
        "object_type",
        "object_id",
        "object_name",
        "changes",
        "before_display",
        "after_display",
        "prev_hash",
        "hash",
    )
    readonly_fields = fields
    before_display = json_display("before")
    after_display = json_display("after")

    @admin.display(description="changes")
    def changes(self, change: ScheduleChange) -> str:
        """The fields that differ, "name: before → after", one per line."""
        if change.action == ScheduleChange.Action.RUN:
            return "run requested"
        if change.action == ScheduleChange.Action.DELETE:
            return "deleted"
        before, after = change.before or {}, change.after or {}
        names = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
        if not names:
            return "none"
        return format_html_join(
            "",
            "<div>{}: {} &rarr; {}</div>",
            ((n, _shown(before.get(n)), _shown(after.get(n))) for n in names),
        )


def verification_request_failure(request_id: str) -> str:
    """Why the worker's verification failed ("" while it is queued or running, or when no result
    backend can tell: the page keeps following it)."""
    from celery import current_app
    from celery.result import AsyncResult

    if current_app.conf.task_always_eager:  # no result backend: an eager failure raised already
        return ""
    try:
        result = AsyncResult(request_id)
        state, outcome = result.state, result.result
    except Exception:
        logger.warning("state of verification request %s unreadable", request_id, exc_info=True)
        return ""
    return f"The worker failed: {outcome!r}" if state == "FAILURE" else ""


def _shown(value) -> str:
    return "-" if value in (None, "") else str(value)


@admin.register(AccessRecord)
class AccessRecordAdmin(AuditTrailAdmin):
    """The access log (docs/design.md section 19): who viewed or took what, with which search
    and filters. Compliance lists and exports it; nobody adds, changes or deletes a record."""

    list_display = ("created_at", "username", "what", "object_id", "query", "path")
    list_filter = ("what", "created_at")
    search_fields = ("username__exact", "object_id__exact")
    fields = ("created_at", "username", "what", "object_id", "path", "query", "prev_hash", "hash")
    readonly_fields = fields
