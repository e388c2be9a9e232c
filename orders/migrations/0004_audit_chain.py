"""Order events join the audit chain: hashes for the rows already there, then the triggers that
make the table append-only (docs/design.md section 12)."""

from django.db import migrations, models

from audit import triggers
from audit.chain import chain_existing_operation

TABLES = ["orders_orderevent"]


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0003_hardening'),
    ]

    operations = [
        migrations.AddField(
            model_name='orderevent',
            name='hash',
            field=models.CharField(blank=True, editable=False, help_text="SHA-256 over prev_hash and this row's canonical serialisation.", max_length=64),
        ),
        migrations.AddField(
            model_name='orderevent',
            name='prev_hash',
            field=models.CharField(blank=True, editable=False, help_text='hash of the row before this one.', max_length=64),
        ),
        chain_existing_operation("orders", "OrderEvent"),
        triggers.install_operation(TABLES),
    ]
