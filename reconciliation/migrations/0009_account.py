"""Every run and mismatch belongs to an account (docs/design.md section 16): the rows written
before accounts get the default account of the configuration in force when this runs.

On SQLite adding a column with a default rebuilds the table, which drops its triggers: the
append-only triggers of reconciliation_mismatch are installed again."""

from django.db import migrations, models

import brokerops.accounts
from audit import triggers


class Migration(migrations.Migration):

    dependencies = [
        ('reconciliation', '0008_chain_mismatch_signals'),
    ]

    operations = [
        migrations.AddField(
            model_name='mismatch',
            name='account',
            field=models.CharField(db_index=True, default=brokerops.accounts.rows_owner_name, help_text='The trading account (ACCOUNTS_FILE) this row belongs to.', max_length=32),
        ),
        migrations.AddField(
            model_name='reconciliationrun',
            name='account',
            field=models.CharField(db_index=True, default=brokerops.accounts.rows_owner_name, help_text='The trading account (ACCOUNTS_FILE) this row belongs to.', max_length=32),
        ),
        triggers.install_operation(["reconciliation_mismatch"]),
    ]
