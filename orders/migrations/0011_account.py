"""Every order attempt (and through it its events and executions) belongs to an account
(docs/design.md section 16): the attempts written before accounts get the default account of the
configuration in force when this runs."""

from django.db import migrations, models

import brokerops.accounts


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0010_broker_price_precision'),
    ]

    operations = [
        migrations.AddField(
            model_name='orderattempt',
            name='account',
            field=models.CharField(db_index=True, default=brokerops.accounts.rows_owner_name, help_text='The trading account (ACCOUNTS_FILE) this row belongs to.', max_length=32),
        ),
    ]
