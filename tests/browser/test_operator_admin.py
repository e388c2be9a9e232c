"""Operators rerun reconciliation from a run's page in a real browser; compliance cannot."""

import pytest

from brokerops.sim import PaperBroker
from reconciliation.models import ReconciliationRun
from tests import factories
from tests.browser.conftest import admin_login
from tests.integration.conftest import gateway_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def paper_broker(monkeypatch):
    from brokerops.intent.local import LocalSignalStore

    with PaperBroker(default_assets=True) as broker:
        gateway = gateway_for(broker)
        monkeypatch.setattr("reconciliation.services.broker_gateway", lambda account=None: gateway)
        monkeypatch.setattr("reconciliation.services.get_signal_store", LocalSignalStore)
        yield broker
        gateway.close()


def test_operator_reruns_a_failed_run_from_its_page(page, live_server, paper_broker):
    factories.staff_user(group="operations", username="olga", password="pw-for-tests-1")
    failed = factories.reconciliation_run(status="failed", error="broker unreachable")
    paper_broker.seed_position("MSFT", 5)

    admin_login(page, live_server, "olga", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/reconciliation/reconciliationrun/{failed.pk}/change/")
    page.click("#rerun-button")
    rerun = ReconciliationRun.objects.get(rerun_of=failed)
    # The operator lands on the new run's own page.
    page.wait_for_url(f"**/admin/reconciliation/reconciliationrun/{rerun.pk}/change/")
    page.wait_for_selector(f"text=Run #{rerun.pk} requested")
    assert (rerun.status, rerun.requested_by_username) == ("succeeded", "olga")
    assert "UNTRACKED_POSITION" in page.inner_text("body") or "Untracked position" in (
        page.inner_text("body")
    )


def test_operator_sees_the_rerun_queued_until_a_worker_runs_it(
    page, live_server, paper_broker, monkeypatch
):
    from reconciliation.tasks import reconciliation_run_task

    sent = []
    monkeypatch.setattr(reconciliation_run_task, "delay", lambda **kw: sent.append(kw))
    factories.staff_user(group="operations", username="olga", password="pw-for-tests-1")
    earlier = factories.reconciliation_run()
    paper_broker.seed_position("MSFT", 5)

    admin_login(page, live_server, "olga", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/reconciliation/reconciliationrun/")
    page.check(f"input[name=_selected_action][value='{earlier.pk}']")
    page.select_option("select[name=action]", "rerun")
    page.click("button[name=index]")
    rerun = ReconciliationRun.objects.get(rerun_of=earlier)
    page.wait_for_url(f"**/admin/reconciliation/reconciliationrun/{rerun.pk}/change/")
    body = page.inner_text("#content")
    assert "Queued" in body and "olga" in body
    assert "Run requested" in page.inner_text("body")  # its event, with who asked

    reconciliation_run_task(**sent[0])  # the worker picks it up
    page.reload()
    assert "Succeeded" in page.inner_text("#content")
    assert "Untracked position" in page.inner_text("body") or "UNTRACKED_POSITION" in (
        page.inner_text("body")
    )


def test_compliance_sees_no_rerun_button(page, live_server):
    factories.staff_user(group="compliance", username="carl", password="pw-for-tests-1")
    run = factories.reconciliation_run()
    admin_login(page, live_server, "carl", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/reconciliation/reconciliationrun/{run.pk}/change/")
    page.wait_for_selector("#content")
    assert page.locator("#rerun-button").count() == 0
