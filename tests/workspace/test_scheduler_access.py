"""Scheduler internals are for operators (docs/design.md section 7): compliance keeps the periodic
task list only; existing databases get the change through a migration."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from brokerops.access import GROUPS
from tests import factories

INTERNALS = (
    "intervalschedule",
    "crontabschedule",
    "solarschedule",
    "clockedschedule",
)


def codenames(group: str) -> set[str]:
    return set(
        Group.objects.get(name=group)
        .permissions.filter(content_type__app_label="django_celery_beat")
        .values_list("codename", flat=True)
    )


def test_the_grants_keep_scheduler_internals_for_operators():
    beat_compliance = set(GROUPS["compliance"]["django_celery_beat"])
    beat_operations = set(GROUPS["operations"]["django_celery_beat"])
    assert beat_compliance == {"view_periodictask"}
    assert {f"view_{m}" for m in INTERNALS} | {"view_periodictask"} == beat_operations


@pytest.mark.django_db
@pytest.mark.parametrize("model", INTERNALS)
def test_compliance_is_refused_the_internals_operators_see(client, model):
    url = reverse(f"admin:django_celery_beat_{model}_changelist")
    client.force_login(factories.staff_user(group="compliance"))
    assert client.get(url).status_code == 403
    assert (
        client.get(reverse("admin:django_celery_beat_periodictask_changelist")).status_code == 200
    )
    client.force_login(factories.staff_user(group="operations"))
    assert client.get(url).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_migration_takes_the_internals_from_compliance_on_an_existing_database():
    factories.restore_groups()  # a transactional test's flush dropped them
    executor = MigrationExecutor(connection)
    executor.migrate([("audit", "0001_initial")])
    # A database as the earlier grants left it: compliance could view every beat table.
    old = Permission.objects.filter(
        content_type__app_label="django_celery_beat", codename__startswith="view_"
    )
    Group.objects.get(name="compliance").permissions.add(*old)
    assert {f"view_{m}" for m in INTERNALS} <= codenames("compliance")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert codenames("compliance") == {"view_periodictask"}
    assert {f"view_{m}" for m in INTERNALS} <= codenames("operations")
