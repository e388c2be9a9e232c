"""Chain heads and verification results: append-only from the start (docs/design.md section 12)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from audit import triggers
from brokerops.access import sync_groups

TABLES = ["audit_chainhead", "audit_auditverification"]


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('reconciliation', '0005_audit_chain'),
    ]

    operations = [
        migrations.CreateModel(
            name='AuditVerification',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('started_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('finished_at', models.DateTimeField()),
                ('ok', models.BooleanField()),
                ('rows_checked', models.BigIntegerField(default=0)),
                ('heads_checked', models.PositiveIntegerField(default=0)),
                ('problems', models.PositiveIntegerField(default=0, help_text='Broken links and heads found.')),
                ('first_problem', models.TextField(blank=True, help_text='The first broken link, named.')),
                ('report', models.JSONField(blank=True, default=dict, help_text='Per chain: rows, head, problems.')),
                ('trigger', models.CharField(help_text='command or schedule', max_length=16)),
            ],
            options={
                'ordering': ['-started_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='ChainHead',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('chain', models.CharField(max_length=32)),
                ('row_id', models.BigIntegerField()),
                ('hash', models.CharField(max_length=64)),
                ('signature', models.CharField(blank=True, help_text='HMAC-SHA256; blank: no key', max_length=64)),
                ('recorded_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('recorded_by', models.CharField(help_text='The run or process that recorded it.', max_length=150)),
                ('run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='chain_heads', to='reconciliation.reconciliationrun')),
            ],
            options={
                'ordering': ['-recorded_at', '-id'],
                'indexes': [models.Index(fields=['chain', 'row_id'], name='chainhead_chain_row')],
            },
        ),
        triggers.install_operation(TABLES),
        migrations.RunPython(sync_groups, migrations.RunPython.noop),
    ]
