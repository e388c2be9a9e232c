"""The account's activities (docs/design.md section 18.2): append-only (the audit triggers) and
hash-chained (``account_activities``); compliance and operations may view them."""

import brokerops.accounts
import brokerops.fields
import django.utils.timezone
from django.db import migrations, models

from audit import triggers
from brokerops.access import sync_groups


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("audit", "0003_schedule_change"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.CreateModel(
            name='AccountActivity',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('prev_hash', models.CharField(blank=True, editable=False, help_text='hash of the row before this one.', max_length=64)),
                ('hash', models.CharField(blank=True, editable=False, help_text="SHA-256 over prev_hash and this row's canonical serialisation.", max_length=64)),
                ('account', models.CharField(default=brokerops.accounts.rows_owner_name, help_text='The trading account (ACCOUNTS_FILE) this row belongs to.', max_length=32)),
                ('activity_id', models.CharField(help_text="Alpaca's id (unique per account).", max_length=255)),
                ('activity_type', models.CharField(db_index=True, max_length=64)),
                ('sub_type', models.CharField(blank=True, max_length=64)),
                ('symbol', models.CharField(blank=True, db_index=True, max_length=64)),
                ('side', models.CharField(blank=True, max_length=64)),
                ('qty', brokerops.fields.ExactDecimalField(blank=True, help_text='Signed as Alpaca sends it; exact.', null=True)),
                ('price', brokerops.fields.ExactDecimalField(blank=True, null=True)),
                ('net_amount', brokerops.fields.ExactDecimalField(blank=True, null=True)),
                ('occurred_at', models.DateTimeField(blank=True, db_index=True, help_text="Executed at, else the activity's date.", null=True)),
                ('order_id', models.CharField(blank=True, db_index=True, max_length=128)),
                ('status', models.CharField(blank=True, max_length=64)),
                ('description', models.TextField(blank=True)),
                ('raw', models.JSONField(blank=True, default=dict, help_text='The body as Alpaca sent it.')),
                ('recorded_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'verbose_name': 'account activity',
                'verbose_name_plural': 'account activities',
                'ordering': ['-id'],
                'indexes': [models.Index(fields=['account', 'id'], name='ledger_activity_account_seq')],
                'constraints': [models.UniqueConstraint(fields=('account', 'activity_id'), name='ledger_activity_once')],
            },
        ),
        triggers.install_operation(["ledger_accountactivity"]),
        migrations.RunPython(sync_groups, migrations.RunPython.noop),
    ]
