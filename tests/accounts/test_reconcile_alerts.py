"""Reconciliation alerts per account (docs/design.md sections 13 and 16): one account's failed or
stale runs raise that account's alert, and only that account's runs resolve it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Alert
from alerts.runs import alerts_reconciliation_run_finished
from alerts.tasks import alerts_check_stale_runs_task
from tests import factories
from tests.accounts.two_accounts import configure

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def accounts_configured(settings, monkeypatch, tmp_path):
    urls = {"desk": "http://127.0.0.1:9", "client": "http://127.0.0.1:9"}
    configure(settings, monkeypatch, tmp_path / "accounts.toml", urls)


def open_alerts() -> list[tuple[str, str]]:
    return sorted(Alert.objects.filter(resolved_at__isnull=True).values_list("kind", "key"))


def finished(account: str, status: str, **fields):
    now = timezone.now()
    run = factories.reconciliation_run(
        account=account, status=status, started_at=now, finished_at=now, **fields
    )
    alerts_reconciliation_run_finished(run=run)
    return run


def test_the_stale_check_is_per_account(accounts_configured, settings):
    settings.RECONCILE_INTERVAL_S = 60
    long_ago = timezone.now() - timedelta(hours=1)
    factories.reconciliation_run(account="desk", started_at=timezone.now())
    factories.reconciliation_run(account="client", started_at=long_ago, finished_at=long_ago)

    assert alerts_check_stale_runs_task() is True

    [alert] = Alert.objects.all()
    assert (alert.kind, alert.key) == ("RUNS_STALE", "RUNS_STALE@client")
    assert "of account 'client'" in alert.subject


def test_one_accounts_success_resolves_only_its_own_alerts(accounts_configured):
    finished("client", "failed", error="BrokerUnavailable: down")
    desk_run = factories.reconciliation_run(
        account="desk", status="failed", finished_at=timezone.now()
    )
    factories.mismatch(run=desk_run, account="desk", symbol="AAPL", signal_id="s-d")
    alerts_reconciliation_run_finished(run=desk_run)
    assert open_alerts() == [
        ("ORPHAN_POSITION", "ORPHAN_POSITION@desk:AAPL:s-d"),
        ("RUN_FAILED", "RUN_FAILED@client"),
        ("RUN_FAILED", "RUN_FAILED@desk"),
    ]

    finished("desk", "succeeded")  # the desk's orphan and failure end; the client's stay

    assert open_alerts() == [("RUN_FAILED", "RUN_FAILED@client")]
    finished("client", "succeeded")
    assert open_alerts() == []
