"""The mismatch-to-signals relation as rows (docs/design.md section 7: a mismatch about several
signals is findable by each of them), append-only like the rest of the trail; existing mismatches
get their rows from their comma-joined ``signal_id``."""

import django.db.models.deletion
from django.db import migrations, models

from audit import triggers

TABLES = ["reconciliation_mismatchsignal"]
# The kinds whose finding joins the ids of every signal on a symbol with ","; the others name one
# signal, whose id may itself hold a comma (frozen here: the rule of 2026-11 records).
JOINED_KINDS = {"QTY_MISMATCH", "SIDE_MISMATCH"}
BATCH = 2000


def signal_ids(kind, stored):
    """The ids a stored mismatch names, in order, once each."""
    if not stored:
        return []
    if kind not in JOINED_KINDS or stored.startswith("sha256:"):
        return [stored]  # one id, or a joined value too long to keep (hashed whole)
    return list(dict.fromkeys(part for part in stored.split(",") if part))


def fill_rows(apps, schema_editor):
    Mismatch = apps.get_model("reconciliation", "Mismatch")
    MismatchSignal = apps.get_model("reconciliation", "MismatchSignal")
    batch = []
    rows = (
        Mismatch.objects.exclude(signal_id="").order_by("pk").values_list("pk", "kind", "signal_id")
    )
    for pk, kind, stored in rows.iterator(chunk_size=BATCH):
        batch += [MismatchSignal(mismatch_id=pk, signal_id=s) for s in signal_ids(kind, stored)]
        if len(batch) >= BATCH:
            MismatchSignal.objects.bulk_create(batch)
            batch = []
    MismatchSignal.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0005_audit_chain"),
    ]

    operations = [
        migrations.CreateModel(
            name="MismatchSignal",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("signal_id", models.CharField(db_index=True, max_length=1500)),
                (
                    "mismatch",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="signals",
                        to="reconciliation.mismatch",
                    ),
                ),
            ],
            options={
                "ordering": ["mismatch_id", "id"],
            },
        ),
        migrations.RunPython(fill_rows, migrations.RunPython.noop),
        triggers.install_operation(TABLES),
    ]
