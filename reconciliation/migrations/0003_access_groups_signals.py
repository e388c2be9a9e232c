"""Grant the staff groups the view permission on the local signal store's documents."""

from django.db import migrations

from brokerops.access import sync_groups


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0002_access_groups"),
        ("intent", "0001_initial"),
    ]

    operations = [migrations.RunPython(sync_groups, migrations.RunPython.noop)]
