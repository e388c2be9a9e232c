"""``{% audit_last_verification as v %}`` for the admin pages that show the trail's state."""

from django import template

from audit.models import AuditVerification
from audit.services import audit_last_verification

register = template.Library()


@register.simple_tag(name="audit_last_verification")
def last_verification() -> AuditVerification | None:
    return audit_last_verification()
