"""Changing the schedule is one permission of its own, and every change is on the record
(docs/design.md, section 7): operations may enable, disable, toggle, run, add, edit and delete
periodic tasks and their schedules; each is a chained audit event with who, what, before and
after, shown in the workspace."""

import pytest
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.auth.models import Permission, User
from django.core import checks
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from audit.models import AuditVerification, ScheduleChange
from audit.services import audit_verify
from tests import factories
from workspace.checks import actions_without_permissions

pytestmark = pytest.mark.django_db
TASKS_URL = "admin:django_celery_beat_periodictask_changelist"


@pytest.fixture
def schedule():
    every = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    return {
        "every": every,
        "reconcile": PeriodicTask.objects.create(
            name="reconcile", task="reconciliation.run", interval=every
        ),
        "verify-audit": PeriodicTask.objects.create(
            name="verify-audit", task="audit.verify", interval=every
        ),
    }


@pytest.fixture
def operator(client):
    client.force_login(factories.staff_user(group="operations", username="opal"))
    return client


def act(client, action: str, *tasks: PeriodicTask):
    return client.post(
        reverse(TASKS_URL),
        {"action": action, helpers.ACTION_CHECKBOX_NAME: [t.pk for t in tasks], "index": 0},
    )


def changes() -> list[ScheduleChange]:
    return list(ScheduleChange.objects.order_by("pk"))


def test_operations_may_change_the_schedule_and_compliance_may_not():
    factories.restore_groups()
    operations = factories.staff_user(group="operations")
    compliance = factories.staff_user(group="compliance")
    assert operations.has_perm("audit.change_schedule")
    assert not compliance.has_perm("audit.change_schedule")
    for user in (operations, compliance):
        assert user.has_perm("audit.view_schedulechange")


def test_an_operator_is_offered_the_actions(operator, schedule):
    form = operator.get(reverse(TASKS_URL)).context["action_form"]
    offered = {name for name, _ in form.fields["action"].choices}
    assert {"enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks"} <= offered


def test_disabling_a_task_is_recorded_with_who_what_before_and_after(operator, schedule):
    response = act(operator, "disable_tasks", schedule["reconcile"])
    assert response.status_code == 302
    schedule["reconcile"].refresh_from_db()
    assert not schedule["reconcile"].enabled
    (change,) = changes()
    assert (change.actor, change.action) == ("opal", ScheduleChange.Action.DISABLE)
    assert (change.object_type, change.object_id, change.object_name) == (
        "periodictask",
        schedule["reconcile"].pk,
        str(schedule["reconcile"]),
    )
    assert change.before["enabled"] is True and change.after["enabled"] is False
    assert change.before["task"] == "reconciliation.run"
    assert change.before["interval"] == str(schedule["every"])


def test_enable_and_toggle_record_each_task_they_change(operator, schedule):
    act(operator, "disable_tasks", schedule["reconcile"])
    act(operator, "enable_tasks", schedule["reconcile"], schedule["verify-audit"])
    act(operator, "toggle_tasks", schedule["reconcile"], schedule["verify-audit"])
    recorded = [(c.action, c.object_name.split(":")[0], c.after["enabled"]) for c in changes()]
    assert recorded == [
        ("disable", "reconcile", False),
        ("enable", "reconcile", True),  # verify-audit was enabled already: no change
        ("toggle", "reconcile", False),
        ("toggle", "verify-audit", False),
    ]
    assert not PeriodicTask.objects.filter(enabled=True).exists()


def test_run_now_is_recorded_and_sends_the_task(
    operator, schedule, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        act(operator, "run_tasks", schedule["verify-audit"])
    (change,) = changes()
    assert (change.actor, change.action, change.object_id) == (
        "opal",
        ScheduleChange.Action.RUN,
        schedule["verify-audit"].pk,
    )
    assert change.after["run_requested"] is True
    assert AuditVerification.objects.filter(trigger="schedule").count() == 1  # it ran


def test_running_an_unknown_task_changes_and_records_nothing(operator, schedule):
    PeriodicTask.objects.filter(pk=schedule["reconcile"].pk).update(task="no.such.task")
    response = operator.post(
        reverse(TASKS_URL),
        {
            "action": "run_tasks",
            helpers.ACTION_CHECKBOX_NAME: [schedule["reconcile"].pk],
            "index": 0,
        },
        follow=True,
    )
    said = [str(m) for m in response.context["messages"]]
    assert said == ['task "no.such.task" of "reconcile" not found']
    assert changes() == []


def form_data(page) -> dict:
    """What the browser would post back from a change page: every field's value as shown, and
    each inline's management form."""
    data = {}
    forms = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(n): v for n, v in management.initial.items()})
        forms += list(inline.formset.forms)
    for form in forms:
        for name, field in form.fields.items():
            value = form[name].value()
            if value is None or value is False:
                continue
            if not isinstance(value, bool | list):
                value = field.widget.format_value(value)
            data[form.add_prefix(name)] = "" if value is None else value
    return data


def test_editing_a_schedule_on_its_page_is_recorded(operator, schedule):
    url = reverse("admin:django_celery_beat_intervalschedule_change", args=[schedule["every"].pk])
    data = form_data(operator.get(url))
    data["every"] = "300"
    response = operator.post(url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    (change,) = changes()
    assert (change.action, change.object_type) == ("edit", "intervalschedule")
    assert (change.before["every"], change.after["every"]) == (60, 300)


def test_editing_a_task_on_its_page_is_recorded(operator, schedule):
    task = schedule["reconcile"]
    url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
    data = form_data(operator.get(url))
    data["kwargs"] = '{"trigger": "manual"}'
    response = operator.post(url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    (change,) = changes()
    assert (change.action, change.object_id) == ("edit", task.pk)
    assert change.before["kwargs"] == "{}" and change.after["kwargs"] == '{"trigger": "manual"}'


def test_adding_and_deleting_are_recorded_with_the_tasks_a_schedule_takes_along(operator, schedule):
    add = reverse("admin:django_celery_beat_crontabschedule_add")
    data = form_data(operator.get(add))
    data.update({"minute": "0", "hour": "4", "timezone": "UTC"})
    assert operator.post(add, data).status_code == 302
    every = schedule["every"]
    delete = reverse("admin:django_celery_beat_intervalschedule_delete", args=[every.pk])
    assert operator.post(delete, {"post": "yes"}).status_code == 302
    assert not PeriodicTask.objects.exists()
    recorded = [(c.action, c.object_type, c.object_id) for c in changes()]
    assert recorded[0][:2] == ("add", "crontabschedule")
    assert recorded[1:] == [
        ("delete", "periodictask", schedule["reconcile"].pk),
        ("delete", "periodictask", schedule["verify-audit"].pk),
        ("delete", "intervalschedule", every.pk),
    ]
    assert changes()[-1].before["every"] == 60 and changes()[-1].after == {}


def test_the_librarys_own_permissions_do_not_open_the_schedule(client, schedule):
    """``change_periodictask`` alone is not the schedule permission."""
    user = User.objects.create_user("beatadmin", password="x", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_celery_beat")
    )
    client.force_login(user)
    assert client.get(reverse(TASKS_URL)).context["action_form"] is None
    act(client, "disable_tasks", schedule["reconcile"])
    schedule["reconcile"].refresh_from_db()
    assert schedule["reconcile"].enabled
    url = reverse("admin:django_celery_beat_periodictask_delete", args=[schedule["reconcile"].pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert changes() == []


def test_compliance_reads_the_changes_and_a_tasks_history_shows_them(client, operator, schedule):
    act(operator, "disable_tasks", schedule["reconcile"])
    client.force_login(factories.staff_user(group="compliance"))
    task = schedule["reconcile"]
    history = client.get(
        reverse("admin:django_celery_beat_periodictask_history", args=[task.pk]), follow=True
    )
    assert history.status_code == 200
    assert [c.actor for c in history.context["cl"].result_list] == ["opal"]
    text = history.content.decode()
    assert "Disabled" in text and "enabled: True &rarr; False" in text
    assert "Periodic task" in text  # labels in words (docs/design.md, section 19)
    listing = client.get(reverse("admin:audit_schedulechange_changelist"))
    assert listing.status_code == 200 and listing.context["action_form"] is None
    change = ScheduleChange.objects.get()
    page = client.get(reverse("admin:audit_schedulechange_change", args=[change.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content


def test_the_changes_are_covered_by_the_audit_verification(operator, schedule):
    act(operator, "disable_tasks", schedule["reconcile"])
    act(operator, "enable_tasks", schedule["reconcile"])
    result = audit_verify(trigger="command", processes=1)
    assert result.ok
    assert result.reports["schedule_changes"].rows == 2


def test_the_system_check_names_an_action_that_asks_only_for_view():
    assert actions_without_permissions(admin.site) == []

    site = admin.AdminSite(name="probe")

    @admin.action(description="Forget")
    def forget(modeladmin, request, queryset):
        queryset.update(every=1)

    @admin.action(description="Peek", permissions=["view"])
    def peek(modeladmin, request, queryset):
        return None

    class Careless(admin.ModelAdmin):
        actions = (forget, peek)

    site.register(IntervalSchedule, Careless)
    site.disable_action("delete_selected")
    errors = actions_without_permissions(site)
    assert [e.id for e in errors] == ["brokerops.E101", "brokerops.E101"]
    assert "'forget' of django_celery_beat.IntervalSchedule" in errors[0].msg
    assert all(isinstance(e, checks.Error) for e in errors)
