"""Breaks (docs/design.md section 17): the case table, its chained events (append-only), the
mismatch's link to its break, and the four-eyes permissions granted to the groups (operations
propose, compliance approve). On SQLite adding the mismatch's column may rebuild the table,
which drops its triggers: they are installed again. On PostgreSQL the break table leaves room
on each page (fillfactor 70) so that a run's "seen again" updates stay on their page (HOT)."""

import brokerops.accounts
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from audit import triggers
from brokerops.access import sync_groups


def _fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE reconciliation_break SET (fillfactor = 70)")


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0010_mismatch_signal_account_moved"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Break",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "account",
                    models.CharField(
                        db_index=True,
                        default=brokerops.accounts.rows_owner_name,
                        help_text="The trading account (ACCOUNTS_FILE) this row belongs to.",
                        max_length=32,
                    ),
                ),
                (
                    "key",
                    models.CharField(
                        help_text="SHA-256 of what it is about.", max_length=64, unique=True
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("ORPHAN_POSITION", "Orphan position"),
                            ("UNTRACKED_POSITION", "Untracked position"),
                            ("QTY_MISMATCH", "Quantity mismatch"),
                            ("SIDE_MISMATCH", "Side mismatch"),
                            ("ORDER_NOT_FOUND", "Order not found"),
                            ("ORDER_STATUS_DRIFT", "Order status drift"),
                            ("UNKNOWN_ORDER", "Unknown order"),
                            ("INVALID_SIGNAL", "Invalid signal"),
                            ("SIGNAL_ACCOUNT_MOVED", "Signal moved to another account"),
                        ],
                        max_length=32,
                    ),
                ),
                (
                    "severity",
                    models.CharField(
                        choices=[
                            ("info", "Info"),
                            ("warning", "Warning"),
                            ("critical", "Critical"),
                        ],
                        max_length=16,
                    ),
                ),
                ("symbol", models.CharField(blank=True, db_index=True, max_length=32)),
                (
                    "signal_ids",
                    models.JSONField(blank=True, default=list, help_text="Sorted signal ids."),
                ),
                ("client_order_id", models.CharField(blank=True, db_index=True, max_length=128)),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("open", "Open"),
                            ("acknowledged", "Acknowledged (owned)"),
                            ("proposed", "Proposed (awaiting approval)"),
                            ("closed", "Closed (signed off)"),
                            ("resolved", "Resolved (cleared by a run)"),
                        ],
                        default="open",
                        max_length=16,
                    ),
                ),
                (
                    "disposition",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("explained", "Explained"),
                            ("accepted", "Accepted as is"),
                            ("escalated", "Escalated"),
                            ("written_off", "Written off"),
                            ("repaired", "Repaired by a run (to review)"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "reason",
                    models.TextField(blank=True, help_text="Why the disposition (the proposal)."),
                ),
                ("owner_username", models.CharField(blank=True, max_length=150)),
                ("proposed_by_username", models.CharField(blank=True, max_length=150)),
                ("approved_by_username", models.CharField(blank=True, max_length=150)),
                ("first_seen_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_seen_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "opened_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, help_text="When it (re)opened."
                    ),
                ),
                (
                    "due_at",
                    models.DateTimeField(help_text="Opened plus the due time of its severity."),
                ),
                ("closed_at", models.DateTimeField(blank=True, null=True)),
                (
                    "occurrences",
                    models.PositiveIntegerField(default=1, help_text="Runs that found it."),
                ),
                (
                    "needs_review",
                    models.BooleanField(
                        default=False,
                        help_text="Closed by a run's repair: for compliance to review.",
                    ),
                ),
                ("overdue_alerted_at", models.DateTimeField(blank=True, null=True)),
                (
                    "detail",
                    models.TextField(blank=True, help_text="What the last run that found it said."),
                ),
                (
                    "cleared_by_run",
                    models.ForeignKey(
                        blank=True,
                        db_index=False,
                        help_text="The run that no longer found it.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="breaks_cleared",
                        to="reconciliation.reconciliationrun",
                    ),
                ),
                (
                    "first_run",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="breaks_opened",
                        to="reconciliation.reconciliationrun",
                    ),
                ),
                (
                    "last_run",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="breaks_seen",
                        to="reconciliation.reconciliationrun",
                    ),
                ),
                (
                    "owner",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["due_at", "id"],
                "permissions": [
                    ("propose_break", "Can take, comment on and propose a disposition for a break"),
                    ("approve_break", "Can approve or reject a break's proposed disposition"),
                ],
            },
        ),
        migrations.AddField(
            model_name="mismatch",
            name="break_case",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                db_index=False,
                related_name="mismatches",
                to="reconciliation.break",
            ),
        ),
        migrations.CreateModel(
            name="BreakEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "prev_hash",
                    models.CharField(
                        blank=True,
                        editable=False,
                        help_text="hash of the row before this one.",
                        max_length=64,
                    ),
                ),
                (
                    "hash",
                    models.CharField(
                        blank=True,
                        editable=False,
                        help_text="SHA-256 over prev_hash and this row's canonical serialisation.",
                        max_length=64,
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("opened", "Opened by a run"),
                            ("reopened", "Reopened (found again)"),
                            ("cleared", "Cleared (no longer found)"),
                            ("repaired", "Closed by a run's repair"),
                            ("acknowledged", "Acknowledged"),
                            ("proposed", "Disposition proposed"),
                            ("approved", "Approved (closed)"),
                            ("rejected", "Proposal rejected"),
                            ("reviewed", "Repair reviewed"),
                            ("commented", "Comment"),
                            ("overdue", "Overdue"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "state_from",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("open", "Open"),
                            ("acknowledged", "Acknowledged (owned)"),
                            ("proposed", "Proposed (awaiting approval)"),
                            ("closed", "Closed (signed off)"),
                            ("resolved", "Resolved (cleared by a run)"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "state_to",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("open", "Open"),
                            ("acknowledged", "Acknowledged (owned)"),
                            ("proposed", "Proposed (awaiting approval)"),
                            ("closed", "Closed (signed off)"),
                            ("resolved", "Resolved (cleared by a run)"),
                        ],
                        max_length=16,
                    ),
                ),
                ("actor", models.CharField(blank=True, max_length=150)),
                ("message", models.TextField(blank=True)),
                ("payload", models.JSONField(blank=True, default=dict)),
                (
                    "created_at",
                    models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                ),
                (
                    "break_case",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="events",
                        to="reconciliation.break",
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="reconciliation.reconciliationrun",
                    ),
                ),
            ],
            options={
                "ordering": ["created_at", "id"],
            },
        ),
        migrations.AddIndex(
            model_name="break",
            index=models.Index(fields=["state", "due_at"], name="break_state_due"),
        ),
        migrations.AddIndex(
            model_name="break",
            index=models.Index(fields=["account", "state"], name="break_account_state"),
        ),
        migrations.AddIndex(
            model_name="break",
            index=models.Index(fields=["due_at", "id"], name="break_due"),
        ),
        migrations.AddIndex(
            model_name="break",
            index=models.Index(fields=["owner_username"], name="break_owner"),
        ),
        migrations.AddIndex(
            model_name="mismatch",
            index=models.Index(fields=["break_case", "id"], name="mismatch_break_id"),
        ),
        triggers.install_operation(["reconciliation_breakevent", "reconciliation_mismatch"]),
        migrations.RunPython(sync_groups, migrations.RunPython.noop),
        migrations.RunPython(_fillfactor, migrations.RunPython.noop),
    ]
