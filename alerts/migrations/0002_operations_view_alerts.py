"""Operations see the alerts (read-only): re-applies :func:`brokerops.access.sync_groups`."""

from django.db import migrations

from brokerops.access import sync_groups


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(sync_groups, migrations.RunPython.noop)]
