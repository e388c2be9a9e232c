"""View-only means view-only (docs/design.md, section 7): every admin action and every write of
every registered admin, a library's included, needs a permission beyond "view". A view-only user
is offered no action, and a forged POST (an action on the list, the add, change and delete
pages) changes nothing.

The admins are found in the registry, and their actions asked of a superuser, so an admin or an
action added later is covered without touching this file.
"""

from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.models import Session
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from audit.access import access_record_build, access_records_append
from audit.services import audit_verify
from reconciliation.diff import ReconciliationErrors
from tests import factories
from tests.workspace import helpers as rows
from workspace.models import AccountGrant

pytestmark = pytest.mark.django_db


def _superuser_request():
    request = RequestFactory().get("/admin/")
    request.user = User(username="root", is_superuser=True, is_staff=True, is_active=True)
    return request


def _admins() -> dict[str, admin.ModelAdmin]:
    return {model._meta.label: model_admin for model, model_admin in admin.site._registry.items()}


def _actions() -> list[tuple[str, str]]:
    """Every (model, action) a superuser is offered: each admin's own and the site's."""
    request = _superuser_request()
    return sorted(
        (label, name)
        for label, model_admin in _admins().items()
        for name in model_admin.get_actions(request)
    )


ADMINS = sorted(_admins())
ACTIONS = _actions()


@pytest.fixture
def every_admin_has_rows(django_user_model):
    """At least one row behind every registered admin, so a forged write has a target."""
    run = factories.reconciliation_run()
    rows.record_mismatch(kind=ReconciliationErrors.ORPHAN_POSITION, run=run, symbol="TSLA")
    attempt = factories.order_attempt(client_order_id="bo-sigA-entry", signal_id="sigA")
    factories.order_event(attempt=attempt)
    rows.execution(attempt=attempt, execution_id="x-1", qty="1", at=timezone.now())
    rows.local_signal("sigA")
    from alerts.services import alerts_raise

    alerts_raise(kind="RUN_FAILED", key="run-failed", subject="run failed", body="it failed")
    rows.account_activity()
    audit_verify(trigger="command")  # a verification and the chain heads
    every = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    CrontabSchedule.objects.create(minute="0", hour="4")
    SolarSchedule.objects.create(event="sunrise", latitude="40.7", longitude="-74.0")
    ClockedSchedule.objects.create(clocked_time=timezone.now() + timedelta(days=1))
    PeriodicTask.objects.create(
        name="reconcile",
        task="reconciliation.run",
        interval=every,
        kwargs='{"trigger": "schedule"}',
    )
    PeriodicTask.objects.create(name="verify-audit", task="audit.verify", interval=every)
    operator = factories.staff_user(group="operations")  # a user and the groups
    # An account grant (to a user who is not the viewer: the viewer keeps seeing every account).
    AccountGrant.objects.create(account="default", user=operator, created_by="root")
    schedule_changes_recorded(interval=every)
    access_records_append(  # the access log is an admin too
        [access_record_build(user="opal", what="timeline", object_id="bo-sigA-entry")]
    )


def schedule_changes_recorded(*, interval) -> None:
    """A schedule change on record (its list is an admin too), made by an operator."""
    from audit.models import ScheduleChange
    from audit.schedule import schedule_change_record

    schedule_change_record(
        actor="opal",
        action=ScheduleChange.Action.EDIT,
        target=interval,
        before={"every": 30},
        after={"every": 60},
    )


@pytest.fixture
def viewer(client):
    """A staff user who may view every model, and nothing more."""
    user = User.objects.create_user("viewer", password="pw-for-tests-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(user)
    return client


def database_state() -> dict[str, list[dict]]:
    """Every row of every table (the session table aside: logging in writes it)."""
    return {
        model._meta.label: list(model._default_manager.order_by("pk").values())
        for model in apps.get_models()
        if model is not Session
    }


def _model(label: str):
    return apps.get_model(label)


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_action_is_found():
    """The registry walk finds the library's actions and ours (the test below covers each)."""
    assert ("django_celery_beat.PeriodicTask", "disable_tasks") in ACTIONS
    assert ("django_celery_beat.PeriodicTask", "run_tasks") in ACTIONS
    assert ("reconciliation.ReconciliationRun", "rerun") in ACTIONS
    assert ("orders.OrderAttempt", "resync") in ACTIONS
    assert ("auth.User", "delete_selected") in ACTIONS


@pytest.mark.parametrize(("label", "action"), ACTIONS)
def test_a_view_only_user_is_offered_no_action_and_a_forged_one_changes_nothing(
    viewer, every_admin_has_rows, label, action
):
    model = _model(label)
    targets = [str(pk) for pk in model._default_manager.values_list("pk", flat=True)]
    assert targets, f"no {label} row to act on"
    before = database_state()
    response = viewer.post(
        _url(model, "changelist"),
        {"action": action, helpers.ACTION_CHECKBOX_NAME: targets, "index": 0, "post": "yes"},
    )
    assert response.status_code in (200, 302, 403)
    assert database_state() == before, f"{label}: a forged {action!r} changed the database"

    listing = viewer.get(_url(model, "changelist"))
    assert listing.status_code == 200
    assert listing.context["action_form"] is None, f"{label} offers actions to a view-only user"


@pytest.mark.parametrize("label", ADMINS)
def test_a_view_only_user_cannot_add_change_or_delete(viewer, every_admin_has_rows, label):
    model = _model(label)
    obj = model._default_manager.order_by("pk").first()
    assert obj is not None, f"no {label} row to write to"
    page = viewer.get(_url(model, "change", obj.pk))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content

    before = database_state()
    # A form holding every field's current value plus a changed name: a valid edit if allowed.
    forged = {name: value for name, value in _values(obj).items() if value is not None}
    forged.update({"name": "forged", "enabled": "", "every": "1", "_save": "Save"})
    assert viewer.post(_url(model, "add"), forged).status_code == 403
    assert viewer.post(_url(model, "change", obj.pk), forged).status_code == 403
    assert viewer.post(_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert database_state() == before


def _values(obj) -> dict:
    return {field.attname: getattr(obj, field.attname) for field in obj._meta.concrete_fields}


def test_compliance_cannot_disable_reconcile_by_a_forged_post(client, every_admin_has_rows):
    """The finding: a forged ``disable_tasks`` POST by compliance disabled ``reconcile``."""
    client.force_login(factories.staff_user(group="compliance"))
    task = PeriodicTask.objects.get(name="reconcile")
    url = reverse("admin:django_celery_beat_periodictask_changelist")
    for action in ("disable_tasks", "enable_tasks", "toggle_tasks", "run_tasks"):
        before = database_state()
        client.post(url, {"action": action, helpers.ACTION_CHECKBOX_NAME: [task.pk], "index": 0})
        assert database_state() == before, action
    task.refresh_from_db()
    assert task.enabled
    listing = client.get(url)
    assert listing.status_code == 200
    assert listing.context["action_form"] is None


def _admin_pages(model_admin, pk) -> list[str]:
    """Every named page of an admin (its own extra pages included: a password change, a
    rerun, an export), each for row ``pk`` where it takes one."""
    urls = []
    for pattern in model_admin.get_urls():
        name = getattr(pattern, "name", None)
        if name is None:  # the admin's redirect of a bare id to its change page
            continue
        kwargs = {key: pk for key in pattern.pattern.converters}
        urls.append(reverse(f"admin:{name}", kwargs=kwargs))
    return urls


@pytest.mark.parametrize("label", ADMINS)
def test_a_view_only_user_posting_to_any_page_of_an_admin_changes_nothing(
    viewer, every_admin_has_rows, label
):
    model = _model(label)
    obj = model._default_manager.order_by("pk").first()
    forged = {
        "password1": "Forged-pw-123",
        "password2": "Forged-pw-123",
        "usable_password": "true",
        "post": "yes",
        "_save": "Save",
    }
    before = database_state()
    for url in _admin_pages(admin.site._registry[model], obj.pk):
        response = viewer.post(url, forged)
        assert response.status_code < 500, url
        assert database_state() == before, f"a forged POST to {url} changed the database"
