"""What brokerops told its operators, and whether each channel got it (docs/design.md section 13).

One :class:`Alert` row per condition (its ``key``: an orphan position of one signal, failing
runs, no successful run, a broken audit chain, an overdue break). The row is the deduplication
state: the same condition seen again updates ``last_seen_at`` and ``times_seen`` and sends
nothing, until it resolved (then it may open again) or ``ALERT_REALERT_S`` passed. Rows change
only through :mod:`alerts.services`.
"""

from django.db import models
from django.utils import timezone


class Alert(models.Model):
    class Kind(models.TextChoices):
        ORPHAN_POSITION = "ORPHAN_POSITION", "Orphan position"
        RUN_FAILED = "RUN_FAILED", "Reconciliation run failed"
        RUNS_STALE = "RUNS_STALE", "No successful reconciliation run"
        AUDIT_CHAIN_BROKEN = "AUDIT_CHAIN_BROKEN", "Audit chain broken"
        BREAK_OVERDUE = "BREAK_OVERDUE", "Break overdue"

    class Delivery(models.TextChoices):
        PENDING = "pending", "Pending (queued or waiting for a retry)"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (gave up after the last attempt)"
        SKIPPED = "skipped", "Not configured"

    key = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    subject = models.CharField(max_length=255)
    body = models.TextField(blank=True, help_text="The message as sent (secrets redacted).")
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now, db_index=True)
    times_seen = models.PositiveIntegerField(default=1)
    notified_at = models.DateTimeField(help_text="When the current message was raised.")
    notifications = models.PositiveIntegerField(
        default=1, help_text="Messages raised for this condition (first one and re-alerts)."
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    email_status = models.CharField(max_length=16, choices=Delivery.choices)
    email_attempts = models.PositiveSmallIntegerField(default=0)
    email_next_attempt_at = models.DateTimeField(null=True, blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    webhook_status = models.CharField(max_length=16, choices=Delivery.choices)
    webhook_attempts = models.PositiveSmallIntegerField(default=0)
    webhook_next_attempt_at = models.DateTimeField(null=True, blank=True)
    webhook_sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, help_text="The last failed attempt, per channel.")

    class Meta:
        ordering = ["-last_seen_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
