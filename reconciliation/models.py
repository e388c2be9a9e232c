"""The reconciliation audit trail: one row per run, one row per mismatch it found, an event for
everything that happened to a run.

``Mismatch``, ``MismatchSignal`` and ``RunEvent`` are append-only (database triggers) and
hash-chained (:mod:`audit.chain`); a run row changes only through
:mod:`reconciliation.services`, and each change is also a ``RunEvent``. A repair's outcome is the
``RunEvent`` of its mismatch.
"""

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.models import ChainedQuerySet, ChainedRow
from brokerops.fields import CLIENT_ORDER_ID_MAX, SIGNAL_ID_MAX, account_field, qty_field


class ReconciliationRun(models.Model):
    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Beat schedule"
        COMMAND = "command", "Management command"
        ADMIN = "admin", "Admin rerun"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued (requested, waiting for a worker)"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped (another run held the lock)"

    account = account_field()
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    # Deleting the user changes nothing here (no cascade, no SET NULL: no constraint at all); the
    # id may then name nobody, the username still says who asked.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        help_text="Operator who asked for the run (admin reruns).",
    )
    requested_by_username = models.CharField(max_length=150, blank=True)
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid that ran it")

    positions_seen = models.PositiveIntegerField(default=0)
    orders_seen = models.PositiveIntegerField(default=0)
    signals_seen = models.PositiveIntegerField(default=0)
    mismatches_found = models.PositiveIntegerField(default=0)
    repairs_applied = models.PositiveIntegerField(default=0)
    api_calls = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    summary = models.JSONField(default=dict, blank=True, help_text="What the run saw and did.")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["status", "started_at"], name="recon_run_status_started")]
        permissions = [("trigger_reconciliation", "Can trigger a reconciliation run")]

    def __str__(self) -> str:
        return f"Run #{self.pk} {self.status} ({self.trigger})"

    @property
    def duration_s(self) -> float | None:
        """Wall time of a finished run, in seconds."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class MismatchQuerySet(ChainedQuerySet):
    def with_final_action(self) -> "MismatchQuerySet":
        """Each row with ``final_action``: the action the mismatch ended with, its repair's
        outcome event when one was recorded, else the action the row was stored with.

        The one definition of a mismatch's action: the admin's list, its Action filter, the CSV
        export and ``reconcile --json`` read it (the filter through :meth:`ended_as`). A
        correlated subquery on the outcome's unique ``mismatch_id`` index: one index look-up
        per row shown.
        """
        outcome = _outcomes().filter(mismatch_id=models.OuterRef("pk")).values("action")[:1]
        return self.annotate(
            final_action=Coalesce(
                models.Subquery(outcome, output_field=models.CharField()), models.F("action")
            )
        )

    def ended_as(self, *actions: str) -> "MismatchQuerySet":
        """Mismatches whose ``final_action`` (:meth:`with_final_action`) is one of ``actions``.

        The same rule written for the filter: an outcome event with the action, or none and the
        row stored with it (a mismatch has one outcome at most). Filtering on the annotation
        would look up every row's outcome until a page is found (7 s over 1,000,000 mismatches
        for an action no row has, on PostgreSQL); this form lets the database hash the few
        outcome events with the action once and look up an outcome only for the rows stored
        with it (0.45 s). A test holds both forms to the same answer for every action.
        """
        outcome = _outcomes().filter(mismatch_id=models.OuterRef("pk"))
        return self.filter(
            models.Exists(outcome.filter(action__in=actions))
            | (models.Q(action__in=actions) & ~models.Exists(outcome))
        )


def _outcomes() -> models.QuerySet:
    """Repair outcome events, unordered (a subquery needs no order)."""
    return RunEvent.objects.filter(kind=RunEvent.Kind.REPAIR_OUTCOME).order_by()


class Mismatch(ChainedRow):
    """One disagreement between the broker (holdings) and the signal store (intent).

    ``action`` is what the row was stored with, before any repair (``repair_started`` for a
    repair); the repair's outcome is its ``RunEvent`` (``outcome``). What the mismatch ended
    with is ``final_action`` (:meth:`MismatchQuerySet.with_final_action`).
    """

    class Kind(models.TextChoices):
        ORPHAN_POSITION = "ORPHAN_POSITION", "Orphan position"
        UNTRACKED_POSITION = "UNTRACKED_POSITION", "Untracked position"
        QTY_MISMATCH = "QTY_MISMATCH", "Quantity mismatch"
        SIDE_MISMATCH = "SIDE_MISMATCH", "Side mismatch"
        ORDER_NOT_FOUND = "ORDER_NOT_FOUND", "Order not found"
        ORDER_STATUS_DRIFT = "ORDER_STATUS_DRIFT", "Order status drift"
        UNKNOWN_ORDER = "UNKNOWN_ORDER", "Unknown order"
        INVALID_SIGNAL = "INVALID_SIGNAL", "Invalid signal"
        SIGNAL_ACCOUNT_MOVED = "SIGNAL_ACCOUNT_MOVED", "Signal moved to another account"

    class Severity(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        CRITICAL = "critical", "Critical"

    class Action(models.TextChoices):
        FLAGGED = "flagged", "Flagged only"
        SIGNAL_CLOSED_MANUAL = "signal_closed_manual", "Signal moved to CLOSED_MANUAL"
        ATTEMPT_MARKED_MISSING = "attempt_marked_missing", "Order attempt marked missing"
        ATTEMPT_STATUS_UPDATED = "attempt_status_updated", "Order attempt updated to broker status"
        ORDER_ADOPTED = "order_adopted", "Order adopted into the audit trail"
        REPAIR_STARTED = "repair_started", "Repair started (no outcome recorded: it stopped)"
        DRY_RUN = "dry_run", "None (dry run)"
        REPAIR_SKIPPED = "repair_skipped", "Repair skipped (state moved since the read)"
        REPAIR_FAILED = "repair_failed", "Repair failed"

    account = account_field()
    run = models.ForeignKey(ReconciliationRun, on_delete=models.PROTECT, related_name="mismatches")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    symbol = models.CharField(max_length=32, blank=True, db_index=True)
    signal_id = models.CharField(max_length=SIGNAL_ID_MAX, blank=True, db_index=True)
    client_order_id = models.CharField(max_length=CLIENT_ORDER_ID_MAX, blank=True, db_index=True)
    alpaca_order_id = models.CharField(max_length=64, blank=True, db_index=True)
    expected_qty = qty_field()
    actual_qty = qty_field()
    action = models.CharField(max_length=32, choices=Action.choices, default=Action.FLAGGED)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The break this finding is an occurrence of (docs/design.md section 17), set when the row is
    # written (the row never changes); empty for a dry run's rows and rows from before breaks.
    # Not in the chain's fields (a new chain version would be needed): its run anchors it.
    break_case = models.ForeignKey(
        "Break",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="mismatches",
        db_index=False,  # mismatch_break_id (break, id) serves it and a break's page
    )

    objects = MismatchQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "mismatches"
        indexes = [
            models.Index(fields=["kind", "created_at"], name="mismatch_kind_created"),
            # A break's page lists its newest occurrences first (workspace.breaks).
            models.Index(fields=["break_case", "id"], name="mismatch_break_id"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.symbol or self.client_order_id or self.signal_id}"

    @property
    def outcome_action(self) -> str:
        """The action as it ended: ``final_action`` when the row was read with it, else the same
        rule on this instance (the repair's outcome when one was recorded, else ``action``)."""
        final = getattr(self, "final_action", None)
        if final:
            return final
        outcome = getattr(self, "outcome", None)
        return outcome.action if outcome is not None else self.action

    @property
    def outcome_label(self) -> str:
        """:attr:`outcome_action` as people read it: a repair with no outcome is "in progress"
        while its run is running; "no outcome recorded" only once the run stopped."""
        action = self.outcome_action
        if action == self.Action.REPAIR_STARTED and self.run.status in RUNS_STILL_GOING:
            return REPAIR_IN_PROGRESS
        return str(dict(self.Action.choices).get(action, action))

    @property
    def outcome_detail(self) -> str:
        outcome = getattr(self, "outcome", None)
        details = (self.detail, outcome.message if outcome is not None else "")
        return "; ".join(d for d in details if d)


RUNS_STILL_GOING = frozenset({ReconciliationRun.Status.QUEUED, ReconciliationRun.Status.RUNNING})
REPAIR_IN_PROGRESS = "Repair started (in progress)"


class MismatchSignal(ChainedRow):
    """One signal a mismatch is about, as a row: a mismatch about several signals (a quantity or
    side mismatch over a symbol) is found by each of them with an exact, indexed look-up.

    Written with its mismatch, in the same transaction, by
    :func:`reconciliation.records.mismatches_record`; append-only (database triggers) and
    hash-chained like its mismatch. The mismatch's chained ``signal_id`` keeps the ids as the
    finding joined them.
    """

    mismatch = models.ForeignKey(Mismatch, on_delete=models.PROTECT, related_name="signals")
    signal_id = models.CharField(max_length=SIGNAL_ID_MAX, db_index=True)

    class Meta:
        ordering = ["mismatch_id", "id"]

    def __str__(self) -> str:
        return f"mismatch {self.mismatch_id}: {self.signal_id}"


class RunEvent(ChainedRow):
    """Everything that happened to a run: started, finished, abandoned, each repair's outcome."""

    class Kind(models.TextChoices):
        REQUESTED = "requested", "Run requested (queued)"
        STARTED = "started", "Run started"
        FINISHED = "finished", "Run finished"
        ABANDONED = "abandoned", "Run found abandoned"
        REPAIR_OUTCOME = "repair_outcome", "Repair outcome"

    run = models.ForeignKey(ReconciliationRun, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    status = models.CharField(
        max_length=16,
        choices=ReconciliationRun.Status.choices,
        blank=True,
        help_text="The run's status after this event.",
    )
    mismatch = models.OneToOneField(
        Mismatch,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="outcome",
        help_text="The mismatch whose repair this is the outcome of.",
    )
    action = models.CharField(max_length=32, choices=Mismatch.Action.choices, blank=True)
    message = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} (run #{self.run_id})"  # titles read as words


class Break(models.Model):
    """One discrepancy as a case (docs/design.md section 17): found again and again by runs,
    owned, aged and signed off by a second person.

    The row is a projection: its changes are written only by :mod:`reconciliation.breaks`, each
    with a chained ``BreakEvent`` (the record). ``key`` names the discrepancy (account, kind,
    symbol, signal ids, client order id); a key has one break for ever, which a run reopens
    when its discrepancy comes back, so its history stays in one place.
    """

    class State(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged (owned)"
        PROPOSED = "proposed", "Proposed (awaiting approval)"
        CLOSED = "closed", "Closed (signed off)"
        RESOLVED = "resolved", "Resolved (cleared by a run)"

    class Disposition(models.TextChoices):
        EXPLAINED = "explained", "Explained"
        ACCEPTED = "accepted", "Accepted as is"
        ESCALATED = "escalated", "Escalated"
        WRITTEN_OFF = "written_off", "Written off"
        REPAIRED = "repaired", "Repaired by a run (to review)"

    account = account_field()
    key = models.CharField(max_length=64, unique=True, help_text="SHA-256 of what it is about.")
    kind = models.CharField(max_length=32, choices=Mismatch.Kind.choices)
    severity = models.CharField(max_length=16, choices=Mismatch.Severity.choices)
    symbol = models.CharField(max_length=32, blank=True, db_index=True)
    signal_ids = models.JSONField(default=list, blank=True, help_text="Sorted signal ids.")
    client_order_id = models.CharField(max_length=CLIENT_ORDER_ID_MAX, blank=True, db_index=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    disposition = models.CharField(max_length=16, choices=Disposition.choices, blank=True)
    reason = models.TextField(blank=True, help_text="Why the disposition (the proposal).")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    owner_username = models.CharField(max_length=150, blank=True)
    proposed_by_username = models.CharField(max_length=150, blank=True)
    approved_by_username = models.CharField(max_length=150, blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    opened_at = models.DateTimeField(default=timezone.now, help_text="When it (re)opened.")
    due_at = models.DateTimeField(help_text="Opened plus the due time of its severity.")
    closed_at = models.DateTimeField(null=True, blank=True)
    occurrences = models.PositiveIntegerField(default=1, help_text="Runs that found it.")
    # No indexes on the runs: every run moves ``last_run`` and ``last_seen_at`` on each break it
    # finds again, and an update that touches no indexed column is PostgreSQL's cheap kind (HOT).
    first_run = models.ForeignKey(
        ReconciliationRun, on_delete=models.PROTECT, related_name="breaks_opened", db_index=False
    )
    last_run = models.ForeignKey(
        ReconciliationRun, on_delete=models.PROTECT, related_name="breaks_seen", db_index=False
    )
    cleared_by_run = models.ForeignKey(
        ReconciliationRun,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="breaks_cleared",
        db_index=False,
        help_text="The run that no longer found it.",
    )
    needs_review = models.BooleanField(
        default=False, help_text="Closed by a run's repair: for compliance to review."
    )
    overdue_alerted_at = models.DateTimeField(null=True, blank=True)
    detail = models.TextField(blank=True, help_text="What the last run that found it said.")

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [
            models.Index(fields=["state", "due_at"], name="break_state_due"),
            models.Index(fields=["account", "state"], name="break_account_state"),
            # The open breaks list in due order (any filter) and its owner filter's choices
            # (read by index probes): workspace.admin.breaks.
            models.Index(fields=["due_at", "id"], name="break_due"),
            models.Index(fields=["owner_username"], name="break_owner"),
        ]
        permissions = [
            ("propose_break", "Can take, comment on and propose a disposition for a break"),
            ("approve_break", "Can approve or reject a break's proposed disposition"),
        ]

    def __str__(self) -> str:
        about = self.symbol or self.client_order_id or ", ".join(self.signal_ids)
        return f"Break #{self.pk} {self.get_kind_display()} {about}".strip()


class BreakEvent(ChainedRow):
    """Everything that happened to a break, in order: written only by
    :mod:`reconciliation.breaks`, append-only and hash-chained (``break_events``)."""

    class Kind(models.TextChoices):
        OPENED = "opened", "Opened by a run"
        REOPENED = "reopened", "Reopened (found again)"
        CLEARED = "cleared", "Cleared (no longer found)"
        REPAIRED = "repaired", "Closed by a run's repair"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        PROPOSED = "proposed", "Disposition proposed"
        APPROVED = "approved", "Approved (closed)"
        REJECTED = "rejected", "Proposal rejected"
        REVIEWED = "reviewed", "Repair reviewed"
        COMMENTED = "commented", "Comment"
        OVERDUE = "overdue", "Overdue"
        EXPLAINED = "explained", "Closed as explained by an activity"

    break_case = models.ForeignKey(Break, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    state_from = models.CharField(max_length=16, choices=Break.State.choices, blank=True)
    state_to = models.CharField(max_length=16, choices=Break.State.choices, blank=True)
    run = models.ForeignKey(
        ReconciliationRun, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor = models.CharField(max_length=150, blank=True)
    message = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"break {self.break_case_id} {self.get_kind_display()}"


class DailyReport(models.Model):
    """The end-of-day report of one day (in ``REPORT_TZ``), as mailed (docs/design.md section
    17): beat sends a day once, and this row is how it knows. Written only by
    :mod:`reconciliation.eod_mail`; a failed sending stays ``failed`` with its error until the
    next attempt (beat tries again at its next check)."""

    class Status(models.TextChoices):
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (tried again at beat's next check)"

    day = models.DateField(unique=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    trigger = models.CharField(max_length=16, help_text="schedule or command")
    recipients = models.TextField(blank=True)
    claimed_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    times_sent = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"end-of-day report {self.day} {self.status}"


class OrdersReadBase(models.Model):
    """What the last successful run of an account read of its orders, for the next run to read
    only what changed since (docs/design.md section 18.3): one row per account, replaced by
    each successful run.

    Kept out of the run's ``summary`` on purpose: the summary goes whole into the run's chained
    ``finished`` event and its page, and an account may have thousands of open orders; this row
    is working state (overwritten, never audited), the run's summary says which read it made.
    """

    account = account_field()
    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="+")
    read_at = models.DateTimeField(help_text="When that run's order reads began (our clock).")
    full_read_at = models.DateTimeField(help_text="When the last full look-back read was made.")
    after = models.DateTimeField(help_text="The look-back start that run compared from.")
    activity_pk = models.BigIntegerField(
        null=True, blank=True, help_text="The ledger's last row when that run read (its cursor)."
    )
    # JSON as text: a broker's text may hold NUL, which PostgreSQL refuses in jsonb and text as a
    # character but keeps as the escape JSON writes it with (see reconciliation.incremental).
    orders_json = models.TextField(
        default="{}",
        blank=True,
        help_text='{"open": [[id, symbol, submitted_at], ...], "final": [order, ...]}: the open '
        "orders that run saw, and the final orders of our prefix no attempt names (whole).",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account"], name="recon_orders_base_once")]

    def __str__(self) -> str:
        return f"orders read base of {self.account} (run #{self.run_id})"
