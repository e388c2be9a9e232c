"""Scheduler internals for operators only: compliance loses the view of django-celery-beat's
interval, crontab, solar and clocked tables (it keeps the periodic task list); operations keeps
them (docs/design.md section 7). Re-applies :func:`brokerops.access.sync_groups` on existing
databases."""

from django.db import migrations

from brokerops.access import sync_groups


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("orders", "0005_order_execution"),
        ("intent", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(sync_groups, migrations.RunPython.noop)]
