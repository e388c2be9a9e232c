"""Broker prices and money at any precision (docs/design.md section 6): the price columns
become exact decimals stored as text (brokerops.fields.ExactDecimalField). Rows written before
keep the digits their column had ("190.000000" reads back as 190).

On SQLite altering a column rebuilds the table, which drops its triggers: the append-only
triggers of orders_orderexecution are installed again."""

from django.db import migrations

import brokerops.fields
from audit import triggers


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0009_adopted_without_signal'),
    ]

    operations = [
        migrations.AlterField(
            model_name='orderattempt',
            name='filled_avg_price',
            field=brokerops.fields.ExactDecimalField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='orderattempt',
            name='limit_price',
            field=brokerops.fields.ExactDecimalField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='orderattempt',
            name='notional',
            field=brokerops.fields.ExactDecimalField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='orderattempt',
            name='stop_price',
            field=brokerops.fields.ExactDecimalField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='orderexecution',
            name='price',
            field=brokerops.fields.ExactDecimalField(blank=True, null=True),
        ),
        triggers.install_operation(["orders_orderexecution"]),
    ]
