"""Changes to the beat schedule on the record, and one permission to make them (docs/design.md,
section 7): the chained, append-only ``ScheduleChange`` table; ``audit.change_schedule`` granted
to operations, not compliance; both groups may read the changes. Re-applies
:func:`brokerops.access.sync_groups` on existing databases."""

import django.utils.timezone
from django.db import migrations, models

from audit import triggers
from brokerops.access import sync_groups


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0002_groups_scheduler_for_operators'),
        # The grants name alerts' view permission: its table must exist when they are re-applied.
        ('alerts', '0002_operations_view_alerts'),
    ]

    operations = [
        migrations.CreateModel(
            name='ScheduleChange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('prev_hash', models.CharField(blank=True, editable=False, help_text='hash of the row before this one.', max_length=64)),
                ('hash', models.CharField(blank=True, editable=False, help_text="SHA-256 over prev_hash and this row's canonical serialisation.", max_length=64)),
                ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('actor', models.CharField(help_text='The user who made the change.', max_length=150)),
                ('action', models.CharField(choices=[('enable', 'Enabled'), ('disable', 'Disabled'), ('toggle', 'Toggled'), ('run', 'Run now'), ('add', 'Added'), ('edit', 'Edited'), ('delete', 'Deleted')], max_length=16)),
                ('object_type', models.CharField(choices=[('periodictask', 'Periodic task'), ('intervalschedule', 'Interval schedule'), ('crontabschedule', 'Crontab schedule'), ('solarschedule', 'Solar schedule'), ('clockedschedule', 'Clocked schedule')], help_text='What changed.', max_length=32)),
                ('object_id', models.BigIntegerField(blank=True, null=True)),
                ('object_name', models.CharField(help_text="The task's name or the schedule.", max_length=200)),
                ('before', models.JSONField(blank=True, default=dict)),
                ('after', models.JSONField(blank=True, default=dict)),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'permissions': [('change_schedule', 'Can change the schedule (enable, disable, toggle, run, edit periodic tasks)')],
                'indexes': [models.Index(fields=['object_type', 'object_id'], name='schedulechange_object')],
            },
        ),
        triggers.install_operation(["audit_schedulechange"]),
        migrations.RunPython(sync_groups, migrations.RunPython.noop),
    ]
