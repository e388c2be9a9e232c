"""Create the staff groups `compliance` (view only) and `operations` (view + reruns/re-syncs)."""

from django.db import migrations

from brokerops.access import sync_groups


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0001_initial"),
        ("orders", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(sync_groups, migrations.RunPython.noop)]
