"""Mismatches join the audit chain and runs get their events (docs/design.md section 12): hashes for
the rows already there, then the triggers that make mismatches and run events append-only; the
run's requester no longer follows a deleted user; the staff groups see the run events."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from audit import triggers
from audit.chain import chain_existing_operation
from brokerops.access import sync_groups

TABLES = ["reconciliation_mismatch", "reconciliation_runevent"]


class Migration(migrations.Migration):

    dependencies = [
        ('reconciliation', '0004_hardening'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='mismatch',
            name='hash',
            field=models.CharField(blank=True, editable=False, help_text="SHA-256 over prev_hash and this row's canonical serialisation.", max_length=64),
        ),
        migrations.AddField(
            model_name='mismatch',
            name='prev_hash',
            field=models.CharField(blank=True, editable=False, help_text='hash of the row before this one.', max_length=64),
        ),
        migrations.AlterField(
            model_name='reconciliationrun',
            name='requested_by',
            field=models.ForeignKey(blank=True, db_constraint=False, help_text='Operator who asked for the run (admin reruns).', null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.CreateModel(
            name='RunEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('prev_hash', models.CharField(blank=True, editable=False, help_text='hash of the row before this one.', max_length=64)),
                ('hash', models.CharField(blank=True, editable=False, help_text="SHA-256 over prev_hash and this row's canonical serialisation.", max_length=64)),
                ('kind', models.CharField(choices=[('started', 'Run started'), ('finished', 'Run finished'), ('abandoned', 'Run found abandoned'), ('repair_outcome', 'Repair outcome')], max_length=24)),
                ('status', models.CharField(blank=True, choices=[('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('skipped', 'Skipped (another run held the lock)')], help_text="The run's status after this event.", max_length=16)),
                ('action', models.CharField(blank=True, choices=[('flagged', 'Flagged only'), ('signal_closed_manual', 'Signal moved to CLOSED_MANUAL'), ('attempt_marked_missing', 'Order attempt marked missing'), ('attempt_status_updated', 'Order attempt updated to broker status'), ('order_adopted', 'Order adopted into the audit trail'), ('repair_started', 'Repair started (no outcome recorded: it stopped)'), ('dry_run', 'None (dry run)'), ('repair_skipped', 'Repair skipped (state moved since the read)'), ('repair_failed', 'Repair failed')], max_length=32)),
                ('message', models.TextField(blank=True)),
                ('payload', models.JSONField(blank=True, default=dict)),
                ('actor', models.CharField(blank=True, max_length=150)),
                ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('mismatch', models.OneToOneField(blank=True, help_text='The mismatch whose repair this is the outcome of.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='outcome', to='reconciliation.mismatch')),
                ('run', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='events', to='reconciliation.reconciliationrun')),
            ],
            options={
                'ordering': ['created_at', 'id'],
            },
        ),
        chain_existing_operation("reconciliation", "Mismatch"),
        triggers.install_operation(TABLES),
        migrations.RunPython(sync_groups, migrations.RunPython.noop),
    ]
