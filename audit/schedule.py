"""Changes to the beat schedule, each an audit event (docs/design.md, section 7).

django-celery-beat's tables (periodic tasks and their interval, crontab, solar and clocked
schedules) decide which jobs run: reconciliation, order sync, audit verification. Who enabled,
disabled, ran or edited what, and what it was before and after, is part of the trail.
:func:`schedule_changes_append` is the one writer of :class:`~audit.models.ScheduleChange` rows
(built by :func:`schedule_change_build`, as order events are); the services below change the
schedule and record it in the same transaction, the records last (they lock the chain). The
admin (:mod:`workspace.admin.schedule`) calls them, behind the ``audit.change_schedule`` permission.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from celery import current_app
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django_celery_beat.models import PeriodicTask, PeriodicTasks
from kombu.utils.json import loads

from .chain import chain_append
from .models import ScheduleChange

# Written by beat itself on every run: not the schedule, and not a change anyone made.
_BOOKKEEPING = {"last_run_at", "total_run_count", "date_changed"}


class _SnapshotEncoder(DjangoJSONEncoder):
    """Django's JSON types, and anything else (a crontab's time zone) as its text."""

    def default(self, o: Any) -> Any:
        try:
            return super().default(o)
        except TypeError:
            return str(o)


class ScheduleError(Exception):
    """The schedule change cannot be made as asked (say, a task unknown to the workers); nothing
    was changed or recorded."""


def schedule_snapshot(obj: models.Model | None) -> dict[str, Any]:
    """The row's schedule fields as JSON (a related schedule as its readable form, beat's own
    bookkeeping left out); ``{}`` for no row."""
    if obj is None:
        return {}
    values: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.primary_key or field.name in _BOOKKEEPING:
            continue
        if field.is_relation:
            related = getattr(obj, field.name)
            values[field.name] = None if related is None else str(related)
        else:
            values[field.name] = getattr(obj, field.attname)
    return json.loads(json.dumps(values, cls=_SnapshotEncoder))


def schedule_change_build(
    *,
    actor: str,
    action: ScheduleChange.Action | str,
    target: models.Model,
    before: dict[str, Any],
    after: dict[str, Any],
) -> ScheduleChange:
    """An unsaved change of ``target`` (for :func:`schedule_changes_append`)."""
    return ScheduleChange(
        actor=actor[:150],
        action=ScheduleChange.Action(action),
        object_type=ScheduleChange.ObjectType(target._meta.model_name),
        object_id=target.pk,
        object_name=str(target)[:200],
        before=before,
        after=after,
    )


def schedule_changes_append(changes: Iterable[ScheduleChange]) -> list[ScheduleChange]:
    """Store built changes at the end of their chain (in the caller's transaction, if any).
    Append last in a transaction: the chain stays locked until it ends."""
    return chain_append(changes)


def schedule_change_record(**fields: Any) -> ScheduleChange:
    """Build and store one change (see :func:`schedule_change_build`)."""
    (change,) = schedule_changes_append([schedule_change_build(**fields)])
    return change


def periodic_tasks_switch(
    *, tasks: models.QuerySet[PeriodicTask], action: ScheduleChange.Action, actor: str
) -> int:
    """Enable, disable or toggle ``tasks``; record each one that changed. Returns that count."""
    if action not in (
        ScheduleChange.Action.ENABLE,
        ScheduleChange.Action.DISABLE,
        ScheduleChange.Action.TOGGLE,
    ):
        raise ValueError(f"not a switch: {action!r}")
    changes = []
    with transaction.atomic():
        # Only the tasks' rows: the admin's list joins their (nullable) schedules, which
        # PostgreSQL will not lock through an outer join.
        for task in tasks.select_for_update(of=("self",)).order_by("pk"):
            before = schedule_snapshot(task)
            enabled = {
                ScheduleChange.Action.ENABLE: True,
                ScheduleChange.Action.DISABLE: False,
                ScheduleChange.Action.TOGGLE: not task.enabled,
            }[action]
            if enabled == task.enabled:
                continue
            task.enabled = enabled
            task.save()  # beat's own save: clears last_run_at when disabled, marks the change
            changes.append(
                schedule_change_build(
                    actor=actor,
                    action=action,
                    target=task,
                    before=before,
                    after=schedule_snapshot(task),
                )
            )
        schedule_changes_append(changes)
    return len(changes)


def periodic_tasks_run(*, tasks: models.QuerySet[PeriodicTask], actor: str) -> int:
    """Run ``tasks`` now (as beat would send them, after the transaction commits); record each
    request. Raises :class:`ScheduleError`, changing nothing, when a task is unknown."""
    current_app.loader.import_default_modules()
    with transaction.atomic():
        chosen = list(tasks.order_by("pk"))
        for task in chosen:
            if task.task not in current_app.tasks:
                raise ScheduleError(f'task "{task.task}" of "{task.name}" not found')
        changes = []
        for task in chosen:
            snapshot = schedule_snapshot(task)
            changes.append(
                schedule_change_build(
                    actor=actor,
                    action=ScheduleChange.Action.RUN,
                    target=task,
                    before=snapshot,
                    after={**snapshot, "run_requested": True},
                )
            )
            transaction.on_commit(_sender(task))
        schedule_changes_append(changes)
    return len(chosen)


def _sender(task: PeriodicTask):
    job = current_app.tasks[task.task]
    args, kwargs = loads(task.args or "[]"), loads(task.kwargs or "{}")
    options = {"headers": {"periodic_task_name": task.name}}
    if task.queue:
        options["queue"] = task.queue
    return lambda: job.apply_async(args=args, kwargs=kwargs, **options)


def schedule_row_saved(
    *, obj: models.Model, before: dict[str, Any], adding: bool, actor: str
) -> ScheduleChange | None:
    """Record an added or edited scheduler row (after it was saved); an edit that changed
    nothing is not a change."""
    after = schedule_snapshot(obj)
    if not adding and after == before:
        return None
    if isinstance(obj, PeriodicTask):
        PeriodicTasks.update_changed()
    return schedule_change_record(
        actor=actor,
        action=ScheduleChange.Action.ADD if adding else ScheduleChange.Action.EDIT,
        target=obj,
        before=before,
        after=after,
    )


def schedule_rows_delete(*, objs: Iterable[models.Model], actor: str) -> int:
    """Delete scheduler rows and record each, with the periodic tasks a deleted schedule
    takes with it (its foreign keys cascade)."""
    changes = []
    count = 0
    with transaction.atomic():
        for obj in objs:
            gone = [obj]
            if not isinstance(obj, PeriodicTask):
                field = obj._meta.model_name.removesuffix("schedule")
                gone = [*PeriodicTask.objects.filter(**{field: obj}).order_by("pk"), obj]
            # Built first: a deleted instance loses its id, and a task's name reads its schedule.
            changes += [
                schedule_change_build(
                    actor=actor,
                    action=ScheduleChange.Action.DELETE,
                    target=row,
                    before=schedule_snapshot(row),
                    after={},
                )
                for row in gone
            ]
            obj.delete()
            count += 1
        PeriodicTasks.update_changed()
        schedule_changes_append(changes)
    return count
