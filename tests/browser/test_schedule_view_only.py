"""A compliance officer's walk through the beat schedule in Chromium (docs/design.md, section 7):
the periodic task list offers no action, and a task's history shows who changed it."""

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from audit.models import ScheduleChange
from audit.schedule import periodic_tasks_switch
from tests import factories
from tests.browser.conftest import admin_login

# No serialized_rollback: the files after test_operator_admin find the content types its flush
# left; staff_user rebuilds the groups it needs.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_compliance_sees_no_action_on_the_periodic_tasks_and_reads_their_history(page, live_server):
    factories.staff_user(group="compliance", username="cora", password="pw-for-tests-1")
    every = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(name="reconcile", task="reconciliation.run", interval=every)
    periodic_tasks_switch(
        tasks=PeriodicTask.objects.filter(pk=task.pk),
        action=ScheduleChange.Action.DISABLE,
        actor="opal",
    )

    admin_login(page, live_server, "cora", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/django_celery_beat/periodictask/")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 1
    assert page.locator("select[name=action]").count() == 0
    assert page.locator("input.action-select").count() == 0
    assert page.locator("a.addlink").count() == 0

    page.locator("#result_list tbody tr th a").first.click()
    page.wait_for_selector("a.historylink")
    assert page.locator("input[name=_save]").count() == 0
    page.click("a.historylink")
    page.wait_for_url("**/admin/audit/schedulechange/**")
    row = page.locator("#result_list tbody tr")
    assert row.count() == 1
    text = row.first.inner_text()
    assert "opal" in text and "Disabled" in text and "enabled: True → False" in text
