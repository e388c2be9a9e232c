"""Executions pushed on the trade_updates stream, each recorded once (append-only)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from audit import triggers
from brokerops.access import sync_groups


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0004_audit_chain'),
    ]

    operations = [
        migrations.CreateModel(
            name='OrderExecution',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('execution_id', models.CharField(max_length=64, unique=True)),
                ('event', models.CharField(help_text='fill or partial_fill', max_length=16)),
                ('qty', models.DecimalField(blank=True, decimal_places=9, help_text='Quantity of this execution.', max_digits=28, null=True)),
                ('price', models.DecimalField(blank=True, decimal_places=6, max_digits=20, null=True)),
                ('position_qty', models.DecimalField(blank=True, decimal_places=9, help_text="The account's position in the symbol after it (net of crypto fees).", max_digits=28, null=True)),
                ('executed_at', models.DateTimeField(blank=True, null=True)),
                ('received_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('attempt', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='executions', to='orders.orderattempt')),
            ],
            options={
                'ordering': ['received_at', 'id'],
            },
        ),
        triggers.install_operation(["orders_orderexecution"]),
        migrations.RunPython(sync_groups, migrations.RunPython.noop),
    ]
