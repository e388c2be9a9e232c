"""What proves the audit trail: chained rows, the chain heads runs record, verification results.

``ChainedRow`` is the base of every hash-chained audit table (``OrderEvent``,
``OrderExecution``, ``Mismatch``, ``MismatchSignal``, ``RunEvent``, ``ScheduleChange``); its rows
are written only by :func:`audit.chain.chain_append`. ``ChainHead`` and ``AuditVerification`` rows
are append-only too (database triggers refuse UPDATE and DELETE).
"""

from django.db import models
from django.utils import timezone


class ChainedQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        if any(not obj.hash for obj in objs):
            raise TypeError(
                f"{self.model.__name__} rows are hash-chained: write them with "
                "audit.chain.chain_append (through their service's writer)"
            )
        return super().bulk_create(objs, *args, **kwargs)


class ChainedRow(models.Model):
    """An append-only, hash-chained audit row: created only by ``chain_append``, never saved
    or changed afterwards (the database refuses it too)."""

    prev_hash = models.CharField(
        max_length=64, blank=True, editable=False, help_text="hash of the row before this one."
    )
    hash = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="SHA-256 over prev_hash and this row's canonical serialisation.",
    )

    objects = ChainedQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        raise TypeError(
            f"{type(self).__name__} rows are append-only and hash-chained: write them with "
            "audit.chain.chain_append (through their service's writer), never save()"
        )


class ChainHead(models.Model):
    """The last row of a chain as a finished run (or a verification) saw it, signed with
    ``AUDIT_HMAC_KEY`` when set: rewriting the chain before it then needs the key."""

    chain = models.CharField(max_length=32)
    row_id = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    signature = models.CharField(max_length=64, blank=True, help_text="HMAC-SHA256; blank: no key")
    recorded_at = models.DateTimeField(default=timezone.now, db_index=True)
    recorded_by = models.CharField(max_length=150, help_text="The run or process that recorded it.")
    run = models.ForeignKey(
        "reconciliation.ReconciliationRun",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="chain_heads",
    )

    class Meta:
        ordering = ["-recorded_at", "-id"]
        indexes = [models.Index(fields=["chain", "row_id"], name="chainhead_chain_row")]

    def __str__(self) -> str:
        return f"{self.chain} @ {self.row_id}"


class AuditVerification(models.Model):
    """One run of ``verify_audit``: every chain recomputed, every recorded head checked."""

    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField()
    ok = models.BooleanField()
    rows_checked = models.BigIntegerField(default=0)
    heads_checked = models.PositiveIntegerField(default=0)
    problems = models.PositiveIntegerField(default=0, help_text="Broken links and heads found.")
    first_problem = models.TextField(blank=True, help_text="The first broken link, named.")
    report = models.JSONField(
        default=dict, blank=True, help_text="Per chain: rows, head, problems."
    )
    trigger = models.CharField(max_length=16, help_text="command, schedule or admin")

    class Meta:
        ordering = ["-started_at", "-id"]
        permissions = [
            # Beyond view (docs/design.md section 19): each request is on the access log.
            ("verify_audit", "Can start an audit verification"),
            ("download_evidence", "Can download evidence packs"),
        ]

    def __str__(self) -> str:
        return (
            f"verification {self.started_at:%Y-%m-%d %H:%M:%S} {'intact' if self.ok else 'BROKEN'}"
        )

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


SCHEDULE_PERMISSION = "audit.change_schedule"


class ScheduleChange(ChainedRow):
    """One change to the beat schedule (docs/design.md, section 7): who, what, before and after.

    Written only by :func:`audit.schedule.schedule_change_record`; hash-chained and append-only
    like the rest of the trail. Its model also carries the one permission that allows changing
    the schedule (``audit.change_schedule``, granted to operations).
    """

    class Action(models.TextChoices):
        ENABLE = "enable", "Enabled"
        DISABLE = "disable", "Disabled"
        TOGGLE = "toggle", "Toggled"
        RUN = "run", "Run now"
        ADD = "add", "Added"
        EDIT = "edit", "Edited"
        DELETE = "delete", "Deleted"

    class ObjectType(models.TextChoices):
        """django-celery-beat's tables, by model name."""

        PERIODIC_TASK = "periodictask", "Periodic task"
        INTERVAL = "intervalschedule", "Interval schedule"
        CRONTAB = "crontabschedule", "Crontab schedule"
        SOLAR = "solarschedule", "Solar schedule"
        CLOCKED = "clockedschedule", "Clocked schedule"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150, help_text="The user who made the change.")
    action = models.CharField(max_length=16, choices=Action)
    object_type = models.CharField(max_length=32, choices=ObjectType, help_text="What changed.")
    object_id = models.BigIntegerField(null=True, blank=True)
    object_name = models.CharField(max_length=200, help_text="The task's name or the schedule.")
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="schedulechange_object"),
        ]
        permissions = [
            (
                "change_schedule",
                "Can change the schedule (enable, disable, toggle, run, edit periodic tasks)",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.object_name} by {self.actor}"


class AccessRecord(ChainedRow):
    """One look at, or one copy of, the trail (docs/design.md section 19): who viewed which
    timeline, attempt, run, signal or break page, who exported which list or downloaded which
    evidence pack, and with which search and filters.

    Written only by :mod:`audit.access` (one writer); hash-chained and append-only like the rest
    of the trail: nobody changes or deletes it, superusers included.
    """

    class What(models.TextChoices):
        TIMELINE = "timeline", "Order timeline viewed"
        ATTEMPT = "attempt", "Order attempt viewed"
        RUN = "run", "Reconciliation run viewed"
        SIGNAL = "signal", "Signal viewed"
        BREAK = "break", "Break viewed"
        LIST = "list", "List searched or filtered"
        EXPORT = "export", "List exported (CSV)"
        EVIDENCE = "evidence", "Evidence pack downloaded"
        VERIFY = "verify", "Verification requested"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    username = models.CharField(max_length=150, help_text="Who (the user name).")
    what = models.CharField(max_length=16, choices=What)
    object_id = models.CharField(
        max_length=200, blank=True, help_text="Which object (an id, or the list's model)."
    )
    path = models.CharField(max_length=500, blank=True, help_text="The page asked for.")
    query = models.TextField(blank=True, help_text="The search and filters (query string).")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["what", "object_id"], name="accessrecord_object"),
            models.Index(fields=["username", "created_at"], name="accessrecord_user"),
        ]

    def __str__(self) -> str:
        return f"{self.get_what_display()} {self.object_id} by {self.username}"
