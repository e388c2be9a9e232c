"""Celery tasks for audit integrity: thin wrappers over :mod:`audit.services`."""

from celery import shared_task

from .services import audit_verify, chain_heads_record_moved


@shared_task(name="audit.verify")
def audit_verify_task(requested_by: str = "", request_id: str = "") -> dict:
    """Verify the whole audit trail (beat runs it daily; the admin's "Verify now" names who
    asked); returns the verification's summary.

    Read-only apart from the stored result: safe to retry or to deliver twice.
    """
    result = audit_verify(
        trigger="admin" if requested_by else "schedule",
        requested_by=requested_by,
        request_id=request_id,
    )
    return {"verification_id": result.verification.pk, "ok": result.ok}


@shared_task(name="audit.record_heads")
def audit_record_heads_task() -> dict:
    """Record the heads of the chains that grew since their last head (beat runs it every
    ``AUDIT_HEADS_INTERVAL_S``): the newest rows written outside a cycle get covered too."""
    heads = chain_heads_record_moved(recorded_by="record-audit-heads")
    return {"heads": [head.chain for head in heads]}
