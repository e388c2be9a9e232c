"""The access log (docs/design.md section 19): the chained, append-only ``AccessRecord`` table,
and the two permissions beyond view (start a verification, download an evidence pack), granted
to compliance and operations with reading the log (:func:`brokerops.access.sync_groups`)."""

import django.utils.timezone
from django.db import migrations, models

from audit import triggers
from brokerops.access import sync_groups


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0003_schedule_change'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='auditverification',
            options={'ordering': ['-started_at', '-id'], 'permissions': [('verify_audit', 'Can start an audit verification'), ('download_evidence', 'Can download evidence packs')]},
        ),
        migrations.AlterField(
            model_name='auditverification',
            name='trigger',
            field=models.CharField(help_text='command, schedule or admin', max_length=16),
        ),
        migrations.CreateModel(
            name='AccessRecord',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('prev_hash', models.CharField(blank=True, editable=False, help_text='hash of the row before this one.', max_length=64)),
                ('hash', models.CharField(blank=True, editable=False, help_text="SHA-256 over prev_hash and this row's canonical serialisation.", max_length=64)),
                ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('username', models.CharField(help_text='Who (the user name).', max_length=150)),
                ('what', models.CharField(choices=[('timeline', 'Order timeline viewed'), ('attempt', 'Order attempt viewed'), ('run', 'Reconciliation run viewed'), ('signal', 'Signal viewed'), ('break', 'Break viewed'), ('list', 'List searched or filtered'), ('export', 'List exported (CSV)'), ('evidence', 'Evidence pack downloaded'), ('verify', 'Verification requested')], max_length=16)),
                ('object_id', models.CharField(blank=True, help_text="Which object (an id, or the list's model).", max_length=200)),
                ('path', models.CharField(blank=True, help_text='The page asked for.', max_length=500)),
                ('query', models.TextField(blank=True, help_text='The search and filters (query string).')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'indexes': [models.Index(fields=['what', 'object_id'], name='accessrecord_object'), models.Index(fields=['username', 'created_at'], name='accessrecord_user')],
            },
        ),
        triggers.install_operation(["audit_accessrecord"]),
        migrations.RunPython(sync_groups, migrations.RunPython.noop),
    ]
