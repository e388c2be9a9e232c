"""A local signal's `account` column mirrors its document's `account` (docs/design.md section 16),
filled here for the documents stored before."""

from django.db import migrations, models


def fill_account_column(apps, schema_editor):
    signals = apps.get_model("intent", "LocalSignal")
    rows = signals.objects.using(schema_editor.connection.alias)
    for row in rows.filter(data__has_key="account").only("id", "data").iterator(chunk_size=2000):
        value = row.data.get("account") if isinstance(row.data, dict) else None
        if value in (None, ""):
            continue
        column = value[:100] if isinstance(value, str) else f"<{type(value).__name__}>"
        rows.filter(pk=row.pk).update(account=column)


class Migration(migrations.Migration):

    dependencies = [
        ('intent', '0002_document_id_1500_bytes'),
    ]

    operations = [
        migrations.AddField(
            model_name='localsignal',
            name='account',
            field=models.CharField(blank=True, db_index=True, max_length=100, null=True),
        ),
        migrations.RunPython(fill_account_column, migrations.RunPython.noop),
    ]
