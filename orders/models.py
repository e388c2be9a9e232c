"""The order audit trail: one OrderAttempt per (signal, leg), an OrderEvent for everything after.

An attempt changes only through the order services, and each change of what it records (status,
fills, order id, request) comes with its event.

An attempt is written before any HTTP call, so a crash mid-send leaves a row whose outcome the
order service resolves by ``client_order_id``; it is never resent blindly.
"""

from django.db import models
from django.utils import timezone

from audit.models import ChainedRow
from brokerops.alpaca.constants import MAX_EXECUTION_ID
from brokerops.fields import (
    CLIENT_ORDER_ID_MAX,
    SIGNAL_ID_MAX,
    account_field,
    price_field,
    qty_field,
)
from brokerops.intent.models import document_id_from_column, stored_document_id
from orders.lifecycle import AttemptStatus


class OrderAttempt(models.Model):
    Status = AttemptStatus  # orders/lifecycle.py: the lifecycle in one place

    class Side(models.TextChoices):
        BUY = "buy", "Buy"
        SELL = "sell", "Sell"

    class OrderType(models.TextChoices):
        MARKET = "market", "Market"
        LIMIT = "limit", "Limit"
        STOP = "stop", "Stop"
        STOP_LIMIT = "stop_limit", "Stop limit"
        TRAILING_STOP = "trailing_stop", "Trailing stop"

    account = account_field()
    client_order_id = models.CharField(max_length=CLIENT_ORDER_ID_MAX, unique=True)
    signal_id = models.CharField(max_length=SIGNAL_ID_MAX, blank=True, db_index=True)
    # The signal's id as the store knows it, where `signal_id` holds its hashed audit form (an
    # id with a NUL, or one that looks hashed): NUL written as "/" (the local store's column
    # form, `stored_document_id`). Empty when `signal_id` is the id itself.
    signal_ref = models.CharField(max_length=SIGNAL_ID_MAX, blank=True, default="")
    leg = models.CharField(max_length=16, default="entry")
    alpaca_order_id = models.CharField(max_length=64, blank=True, db_index=True)

    symbol = models.CharField(max_length=32, db_index=True)
    # Choices (not enforced by the database: an adopted order keeps what Alpaca says) also give
    # the admin's filters fixed options instead of a DISTINCT over every attempt.
    side = models.CharField(max_length=8, choices=Side.choices)
    order_type = models.CharField(max_length=16, choices=OrderType.choices)
    time_in_force = models.CharField(max_length=8, blank=True)
    qty = qty_field()
    notional = price_field()
    limit_price = price_field()
    stop_price = price_field()
    extended_hours = models.BooleanField(default=False)

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CREATED)
    broker_status = models.CharField(
        max_length=32, blank=True, help_text="The order status Alpaca reported last, verbatim."
    )
    filled_qty = qty_field()
    filled_avg_price = price_field()
    reason = models.TextField(blank=True, help_text="Why it was rejected or marked missing.")
    adopted = models.BooleanField(
        default=False, help_text="Found at the broker with our prefix but never recorded by us."
    )
    request_payload = models.JSONField(
        default=dict, blank=True, help_text="What was (or would be) sent; never credentials."
    )

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"], name="attempt_status_created")]
        constraints = [
            # One attempt per signal and leg; an adopted order whose signal id cannot be read
            # back from its client_order_id (the hashed form) has none, and several may exist.
            models.UniqueConstraint(
                fields=["signal_id", "leg"],
                condition=~models.Q(signal_id=""),
                name="attempt_one_per_signal_leg",
            )
        ]
        permissions = [("resync_orderattempt", "Can re-sync order attempts with the broker")]

    def __str__(self) -> str:
        return self.client_order_id

    @property
    def store_signal_id(self) -> str:
        """The id of the attempt's signal in the signal store ("" for none)."""
        return document_id_from_column(self.signal_ref) if self.signal_ref else self.signal_id

    @staticmethod
    def signal_ref_for(signal_id: str, audit_id: str) -> str:
        """`signal_ref` for a signal whose audit form is `audit_id`."""
        return "" if audit_id == signal_id else stored_document_id(signal_id)


class OrderEvent(ChainedRow):
    """Everything that happened to an attempt, in order: requests, responses, errors, changes.

    Append-only (database triggers) and hash-chained: written only by
    :func:`orders.services.events.order_events_append`.
    """

    class Kind(models.TextChoices):
        CREATED = "created", "Attempt recorded"
        VALIDATION_FAILED = "validation_failed", "Validation failed (nothing sent)"
        DEFERRED = "deferred", "Deferred (a check could not be made: nothing sent)"
        WITHDRAWN = "withdrawn", "Withdrawn by its writer before sending (not sent)"
        REQUEST_SENT = "request_sent", "Request sent"
        RESPONSE = "response", "Broker response"
        ERROR = "error", "Broker error"
        LOOKUP = "lookup", "Looked up by client_order_id"
        ADOPTED = "adopted", "Adopted an order found at the broker"
        STATUS_CHANGED = "status_changed", "Status changed"
        SIGNAL_TRANSITION = "signal_transition", "Signal status changed"
        RESYNC_REQUESTED = "resync_requested", "Re-sync requested"
        RESYNC_OUTCOME = "resync_outcome", "Re-sync outcome"

    attempt = models.ForeignKey(OrderAttempt, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The attempt's statuses (their labels in the admin; the stored code in exports and chain).
    status_from = models.CharField(max_length=32, blank=True, choices=AttemptStatus.choices)
    status_to = models.CharField(max_length=32, blank=True, choices=AttemptStatus.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True, help_text="Redacted: never credentials.")
    actor = models.CharField(max_length=150, blank=True, help_text="User or process that acted.")

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} (attempt {self.attempt_id})"  # titles read as words


class OrderExecution(ChainedRow):
    """One execution (fill) Alpaca pushed on the trade_updates stream, recorded once: its
    ``execution_id`` is what makes a redelivered event harmless. Append-only (triggers) and
    hash-chained: written only by :func:`orders.services.events.order_executions_append`."""

    execution_id = models.CharField(max_length=MAX_EXECUTION_ID, unique=True)
    attempt = models.ForeignKey(OrderAttempt, on_delete=models.PROTECT, related_name="executions")
    event = models.CharField(max_length=16, help_text="fill or partial_fill")
    qty = qty_field(help_text="Quantity of this execution.")
    price = price_field()
    position_qty = models.DecimalField(
        max_digits=28,
        decimal_places=9,
        null=True,
        blank=True,
        help_text="The account's position in the symbol after it (net of crypto fees).",
    )
    executed_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["received_at", "id"]

    def __str__(self) -> str:
        return self.execution_id
