"""Celery tasks for audit integrity: thin wrappers over :mod:`audit.services`."""

from celery import shared_task

from .services import audit_verify


@shared_task(name="audit.verify")
def audit_verify_task() -> dict:
    """Verify the whole audit trail (beat runs it daily); returns the verification's summary.

    Read-only apart from the stored result: safe to retry or to deliver twice.
    """
    result = audit_verify(trigger="schedule")
    return {"verification_id": result.verification.pk, "ok": result.ok}
