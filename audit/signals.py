"""What an audit verification announces to the floors above it (alerts listens).

``verification_finished`` (sender :class:`~audit.models.AuditVerification`, ``verification=`` the
row): a verification is stored (and, when the trail is intact, its heads recorded).
"""

from django.dispatch import Signal

verification_finished = Signal()
