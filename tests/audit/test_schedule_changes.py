"""Schedule changes are audit rows like the others (docs/design.md, sections 7 and 12): one writer,
hash-chained, append-only at the database, covered by ``verify_audit``; the migration that adds
them grants the schedule permission to operations only, on an existing database too."""

from itertools import pairwise
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from audit import triggers
from audit.models import ScheduleChange
from audit.schedule import (
    periodic_tasks_switch,
    schedule_change_record,
    schedule_snapshot,
)
from audit.services import audit_verify, chain_heads_record
from tests import factories


@pytest.fixture
def changed():
    every = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(name="reconcile", task="reconciliation.run", interval=every)
    tasks = PeriodicTask.objects.filter(pk=task.pk)
    for action in ("disable", "enable", "toggle"):
        periodic_tasks_switch(tasks=tasks, action=ScheduleChange.Action(action), actor="opal")
    schedule_change_record(
        actor="opal",
        action=ScheduleChange.Action.EDIT,
        target=every,
        before={"every": 30, "period": "seconds"},
        after=schedule_snapshot(every),
    )
    chain_heads_record(recorded_by="test")
    return list(ScheduleChange.objects.order_by("pk"))


def _raw(statement: str, params=()) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.mark.django_db
def test_the_changes_form_one_chain_that_verifies(changed):
    assert [c.action for c in changed] == ["disable", "enable", "toggle", "edit"]
    assert changed[0].prev_hash == "" and all(
        later.prev_hash == earlier.hash for earlier, later in pairwise(changed)
    )
    result = audit_verify(trigger="command", processes=1)
    assert result.ok, result.verification.first_problem
    assert result.reports["schedule_changes"].rows == 4
    assert result.reports["schedule_changes"].heads_checked == 1


@pytest.mark.django_db
def test_a_schedule_change_is_append_only_at_the_database(changed):
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("UPDATE audit_schedulechange SET actor = 'someone else'")
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("DELETE FROM audit_schedulechange")
    with pytest.raises(TypeError, match="chain_append"):
        changed[0].save()
    assert ScheduleChange.objects.filter(actor="opal").count() == 4


@pytest.mark.django_db
def test_verification_names_a_rewritten_and_a_deleted_schedule_change(changed):
    triggers.remove(SimpleNamespace(connection=connection), ["audit_schedulechange"])
    _raw("UPDATE audit_schedulechange SET actor = %s WHERE id = %s", ["nobody", changed[0].pk])
    _raw("DELETE FROM audit_schedulechange WHERE id = %s", [changed[2].pk])
    result = audit_verify(trigger="command", processes=1)
    problems = [str(p) for p in result.reports["schedule_changes"].problems]
    assert not result.ok
    assert f"schedule_changes row {changed[0].pk}: content does not match its hash" in problems[0]
    assert any(
        p.startswith(f"schedule_changes row {changed[3].pk}: prev_hash does not name")
        for p in problems
    )


def _audit_codenames(group: str) -> set[str]:
    return set(
        Group.objects.get(name=group)
        .permissions.filter(content_type__app_label="audit")
        .values_list("codename", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_the_migration_grants_the_schedule_to_operations_only_on_an_existing_database():
    factories.restore_groups()  # a transactional test's flush dropped them
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate([("audit", "0002_groups_scheduler_for_operators")])
    try:
        assert "audit_schedulechange" not in connection.introspection.table_names()
        # A database as 0002 left it: the model and its permissions never existed.
        Permission.objects.filter(
            content_type__app_label="audit", content_type__model="schedulechange"
        ).delete()
        assert "change_schedule" not in _audit_codenames("operations")
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(latest)
    assert {"change_schedule", "view_schedulechange"} <= _audit_codenames("operations")
    assert "change_schedule" not in _audit_codenames("compliance")
    assert "view_schedulechange" in _audit_codenames("compliance")
    every = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.MINUTES)
    schedule_change_record(actor="opal", action="add", target=every, before={}, after={})
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("DELETE FROM audit_schedulechange")
