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
        monkeypatch.setattr("reconciliation.services.broker_gateway", lambda: gateway)
        monkeypatch.setattr("reconciliation.services.signal_store", LocalSignalStore)
        yield broker
        gateway.close()


def test_operator_reruns_a_failed_run_from_its_page(page, live_server, paper_broker):
    factories.staff_user(group="operations", username="olga", password="pw-for-tests-1")
    failed = factories.reconciliation_run(status="failed", error="broker unreachable")
    paper_broker.seed_position("MSFT", 5)

    admin_login(page, live_server, "olga", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/reconciliation/reconciliationrun/{failed.pk}/change/")
    page.click("#rerun-button")
    page.wait_for_selector("text=Rerun of run #")
    rerun = ReconciliationRun.objects.get(rerun_of=failed)
    assert (rerun.status, rerun.requested_by_username) == ("succeeded", "olga")
    page.goto(f"{live_server.url}/admin/reconciliation/reconciliationrun/{rerun.pk}/change/")
    assert "UNTRACKED_POSITION" in page.inner_text("body") or "Untracked position" in (
        page.inner_text("body")
    )


def test_compliance_sees_no_rerun_button(page, live_server):
    factories.staff_user(group="compliance", username="carl", password="pw-for-tests-1")
    run = factories.reconciliation_run()
    admin_login(page, live_server, "carl", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/reconciliation/reconciliationrun/{run.pk}/change/")
    page.wait_for_selector("#content")
    assert page.locator("#rerun-button").count() == 0
