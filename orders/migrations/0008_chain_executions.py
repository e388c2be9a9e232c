"""Executions join the audit chain (docs/design.md section 12): the append-only triggers are
lifted, the rows already there get their hashes, then the triggers are installed again."""

from django.db import migrations, models

from audit import triggers
from audit.chain import chain_existing_operation

TABLES = ["orders_orderexecution"]


class Migration(migrations.Migration):

    dependencies = [
        ("orders", "0007_attempt_signal_ref"),
    ]

    operations = [
        triggers.remove_operation(TABLES),
        migrations.AddField(
            model_name="orderexecution",
            name="hash",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="SHA-256 over prev_hash and this row's canonical serialisation.",
                max_length=64,
            ),
        ),
        migrations.AddField(
            model_name="orderexecution",
            name="prev_hash",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="hash of the row before this one.",
                max_length=64,
            ),
        ),
        chain_existing_operation("orders", "OrderExecution"),
        triggers.install_operation(TABLES),
    ]
