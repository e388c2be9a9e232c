"""django-celery-beat's admin, behind one permission and on the record (docs/design.md, section 7).

The library's admin actions (enable, disable, toggle, run) ask only for the view permission, so
a view-only user could stop reconciliation. Here every write to the schedule (those actions, the
add, change and delete pages of periodic tasks and of their schedules) needs
``audit.change_schedule`` (granted to operations, not compliance), goes through
:mod:`audit.schedule`, and is a :class:`~audit.models.ScheduleChange` event. A row's "History"
opens its list of changes.
"""

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from audit.models import SCHEDULE_PERMISSION, ScheduleChange
from audit.schedule import (
    ScheduleError,
    periodic_tasks_run,
    periodic_tasks_switch,
    schedule_row_saved,
    schedule_rows_delete,
    schedule_snapshot,
)


class ScheduleWriteMixin:
    """Adding, changing and deleting scheduler rows need ``audit.change_schedule`` (and only
    it: the library's own model permissions grant nothing here), and each write is recorded."""

    def _may_change_schedule(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.has_perm(SCHEDULE_PERMISSION)

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return self._may_change_schedule(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_change_schedule(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_change_schedule(request)

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        # The admin's change view runs in a transaction: the row and its record commit together.
        stored = type(obj)._default_manager.filter(pk=obj.pk).first() if change else None
        before = schedule_snapshot(stored)
        super().save_model(request, obj, form, change)
        schedule_row_saved(
            obj=obj, before=before, adding=not change, actor=request.user.get_username()
        )

    def delete_model(self, request: HttpRequest, obj) -> None:
        schedule_rows_delete(objs=[obj], actor=request.user.get_username())

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        schedule_rows_delete(objs=list(queryset.order_by("pk")), actor=request.user.get_username())

    def history_view(self, request: HttpRequest, object_id: str, extra_context=None):
        """The row's recorded changes (the chained list), not the admin's own log, which the
        actions never wrote to."""
        query = urlencode({"object_type": self.model._meta.model_name, "object_id": object_id})
        return HttpResponseRedirect(f"{reverse('admin:audit_schedulechange_changelist')}?{query}")


class TasksOfScheduleInline(beat_admin.PeriodicTaskInline):
    """The periodic tasks using a schedule, shown read-only on its page."""

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class PeriodicTaskAdmin(ScheduleWriteMixin, beat_admin.PeriodicTaskAdmin):
    actions = ("enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks")

    def _switch(self, request: HttpRequest, queryset, action: ScheduleChange.Action) -> None:
        count = periodic_tasks_switch(
            tasks=queryset, action=action, actor=request.user.get_username()
        )
        verb = ScheduleChange.Action(action).label.lower()
        self.message_user(request, f"{count} task(s) {verb}; each change is recorded.")

    @admin.action(description="Enable selected tasks", permissions=["change"])
    def enable_tasks(self, request: HttpRequest, queryset) -> None:
        self._switch(request, queryset, ScheduleChange.Action.ENABLE)

    @admin.action(description="Disable selected tasks", permissions=["change"])
    def disable_tasks(self, request: HttpRequest, queryset) -> None:
        self._switch(request, queryset, ScheduleChange.Action.DISABLE)

    @admin.action(description="Toggle activity of selected tasks", permissions=["change"])
    def toggle_tasks(self, request: HttpRequest, queryset) -> None:
        self._switch(request, queryset, ScheduleChange.Action.TOGGLE)

    @admin.action(description="Run selected tasks", permissions=["change"])
    def run_tasks(self, request: HttpRequest, queryset) -> None:
        try:
            count = periodic_tasks_run(tasks=queryset, actor=request.user.get_username())
        except ScheduleError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{count} task(s) sent to run; each request is recorded.")


class ScheduleAdmin(ScheduleWriteMixin, beat_admin.ScheduleAdmin):
    inlines = [TasksOfScheduleInline]


class ClockedScheduleAdmin(ScheduleAdmin, beat_admin.ClockedScheduleAdmin):
    pass


class CrontabScheduleAdmin(ScheduleAdmin, beat_admin.CrontabScheduleAdmin):
    pass


class SolarScheduleAdmin(ScheduleAdmin, beat_admin.SolarScheduleAdmin):
    pass


class IntervalScheduleAdmin(ScheduleAdmin, beat_admin.IntervalScheduleAdmin):
    pass


def register(site: admin.AdminSite) -> None:
    """Put these admins in place of the library's on ``site``."""
    for model, model_admin in (
        (PeriodicTask, PeriodicTaskAdmin),
        (ClockedSchedule, ClockedScheduleAdmin),
        (CrontabSchedule, CrontabScheduleAdmin),
        (SolarSchedule, SolarScheduleAdmin),
        (IntervalSchedule, IntervalScheduleAdmin),
    ):
        if site.is_registered(model):
            site.unregister(model)
        site.register(model, model_admin)
