"""Audit integrity services: record the chains' heads, verify the whole trail.

docs/design.md section 12. :func:`chain_heads_record` is called by every finished reconciliation
run; :func:`audit_verify` by ``manage.py verify_audit`` and the daily beat task, and its result is
stored as an :class:`~audit.models.AuditVerification` the admin shows.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .chain import CHAINS, chain_head, head_signature
from .models import AuditVerification, ChainHead
from .signals import verification_finished
from .summaries import check_summaries
from .verify import ChainReport, check_chains, check_heads

logger = logging.getLogger(__name__)


def chain_heads_record(*, recorded_by: str, run=None) -> list[ChainHead]:
    """Record the last row of every non-empty chain, signed with ``AUDIT_HMAC_KEY`` when set."""
    return _heads_record(recorded_by=recorded_by, run=run, moved_only=False)


def chain_heads_record_moved(*, recorded_by: str) -> list[ChainHead]:
    """Record the last row of every chain that grew since its newest recorded head.

    Called at the end of every writer's cycle (an order cycle, a sync, a re-sync, a stream
    batch, the watcher's post-send batch) and by the ``record-audit-heads`` beat task, so the
    newest rows are covered too: rows deleted after a head that names them are named by
    ``verify_audit`` (docs/design.md section 12). Two indexed reads per chain when nothing moved.
    """
    return _heads_record(recorded_by=recorded_by, run=None, moved_only=True)


def _heads_record(*, recorded_by: str, run, moved_only: bool) -> list[ChainHead]:
    from django.apps import apps

    key = settings.AUDIT_HMAC_KEY
    now = timezone.now()
    heads = []
    for spec in CHAINS:
        head = chain_head(apps.get_model(spec.app_label, spec.model_name))
        if head is None:
            continue
        row_id, row_hash = head
        if moved_only and _newest_recorded_row(spec.name) == row_id:
            continue
        heads.append(
            ChainHead(
                chain=spec.name,
                row_id=row_id,
                hash=row_hash,
                signature=head_signature(key, chain=spec.name, row_id=row_id, hash=row_hash)
                if key
                else "",
                recorded_at=now,
                recorded_by=recorded_by[:150],
                run=run,
            )
        )
    return ChainHead.objects.bulk_create(heads)


def _newest_recorded_row(chain: str) -> int | None:
    """The row the newest head of ``chain`` names (the (chain, row_id) index answers it)."""
    return (
        ChainHead.objects.filter(chain=chain)
        .order_by("-row_id")
        .values_list("row_id", flat=True)
        .first()
    )


@dataclass(frozen=True)
class VerificationResult:
    verification: AuditVerification
    reports: dict[str, ChainReport]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return self.verification.ok

    def as_json(self) -> dict:
        """The JSON object ``manage.py verify_audit --json`` prints."""
        v = self.verification
        return {
            "verification_id": v.pk,
            "ok": v.ok,
            "rows_checked": v.rows_checked,
            "heads_checked": v.heads_checked,
            "problems": v.problems,
            "first_problem": v.first_problem or None,
            "duration_s": round(v.duration_s, 3),
            "chains": v.report.get("chains", {}),
            "notes": self.notes,
        }


def audit_verify(
    *, trigger: str, processes: int | None = None, requested_by: str = "", request_id: str = ""
) -> VerificationResult:
    """Recompute every chain, check every recorded head and the rows that summarise events
    (:mod:`audit.summaries`); store and return the result.

    An intact trail gets its heads recorded (signed) afterwards, so the next tampering shows
    against them. A broken one is logged at CRITICAL, naming the first broken link.
    ``requested_by`` and ``request_id`` name who asked from the admin and the request its page
    follows (:func:`audit_verification_request`).
    """
    started = timezone.now()
    clock = time.perf_counter()
    reports = check_chains(
        processes=settings.AUDIT_VERIFY_PROCESSES if processes is None else processes
    )
    notes = check_heads(reports, key=settings.AUDIT_HMAC_KEY)
    chained_rows = sum(r.rows for r in reports.values())
    reports.update(check_summaries())  # attempts and runs against their events
    problems = [p for report in reports.values() for p in report.problems]
    ok = not problems
    with transaction.atomic():
        verification = AuditVerification.objects.create(
            started_at=started,
            finished_at=timezone.now(),
            ok=ok,
            rows_checked=chained_rows,
            heads_checked=sum(r.heads_checked for r in reports.values()),
            problems=len(problems),
            first_problem=str(problems[0]) if problems else "",
            report={
                "chains": {name: r.as_dict() for name, r in reports.items()},
                "notes": notes,
                "seconds": round(time.perf_counter() - clock, 3),
                **({"requested_by": requested_by} if requested_by else {}),
                **({"request_id": request_id} if request_id else {}),
            },
            trigger=trigger,
        )
    if ok:
        chain_heads_record(recorded_by=f"verify_audit #{verification.pk}")
    else:
        logger.critical("audit trail BROKEN: %d problem(s); first: %s", len(problems), problems[0])
    # A receiver that raises is logged by Django (ERROR, with its traceback), never passed on.
    verification_finished.send_robust(sender=AuditVerification, verification=verification)
    return VerificationResult(verification, reports, notes)


def audit_last_verification() -> AuditVerification | None:
    """The latest verification, for the admin pages."""
    return AuditVerification.objects.order_by("-started_at", "-pk").first()


def audit_chain_intact() -> bool | None:
    """Whether the latest verification found the trail intact (``None``: never verified); the
    ``/metrics`` gauge (:mod:`brokerops.readings`)."""
    verification = audit_last_verification()
    return None if verification is None else verification.ok


def audit_verification_request(*, requested_by: str) -> str:
    """Ask a Celery worker to verify the trail now (the admin's "Verify now"); returns the
    request's id, which the verification's report carries (:func:`audit_verification_for`).
    Sent once the caller's transaction commits."""
    from .tasks import audit_verify_task  # the task module imports this one

    request_id = uuid.uuid4().hex
    transaction.on_commit(
        lambda: audit_verify_task.apply_async(
            kwargs={"requested_by": requested_by, "request_id": request_id}, task_id=request_id
        )
    )
    return request_id


def audit_verification_for(request_id: str) -> AuditVerification | None:
    """The verification a "Verify now" request produced (None while it runs)."""
    return AuditVerification.objects.filter(report__request_id=request_id).first()
