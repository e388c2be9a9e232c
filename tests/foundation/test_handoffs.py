"""How the floors talk without back-arrows (docs/design.md section 1): a floor announces (a Django
signal) and the floors above listen; an app hands the ground floor its readers at start; a door's
error says its own operator line, so the commands' scaffolding knows no door."""

from __future__ import annotations

import pytest
from django.utils import timezone

from alerts.models import Alert
from audit.models import AuditVerification
from audit.signals import verification_finished
from brokerops import readings
from brokerops.alpaca import BrokerRejected, BrokerUnavailable
from brokerops.commands import operator_error
from brokerops.intent.store import SignalStoreUnavailable
from reconciliation.models import ReconciliationRun
from reconciliation.signals import run_finished
from tests import factories


@pytest.mark.django_db
def test_alerts_listen_to_a_run_and_a_verification_announcing_they_finished():
    run = factories.reconciliation_run(
        status=ReconciliationRun.Status.FAILED, finished_at=timezone.now(), error="broker down"
    )
    run_finished.send_robust(sender=ReconciliationRun, run=run)
    assert Alert.objects.get(kind=Alert.Kind.RUN_FAILED).resolved_at is None
    verification = AuditVerification.objects.create(
        started_at=timezone.now(), finished_at=timezone.now(), ok=False, problems=1, trigger="test"
    )
    verification_finished.send_robust(sender=AuditVerification, verification=verification)
    assert Alert.objects.filter(kind=Alert.Kind.AUDIT_CHAIN_BROKEN).exists()


@pytest.mark.django_db
def test_the_probes_read_the_last_successful_run_through_what_reconciliation_handed_down():
    assert readings.last_successful_run_finished_at() is None
    run = factories.reconciliation_run(finished_at=timezone.now())
    assert run.status == ReconciliationRun.Status.SUCCEEDED
    assert readings.last_successful_run_finished_at(using="default") == run.finished_at
    assert readings.audit_chain_intact() is None  # never verified


def test_a_reading_nobody_provided_names_the_app_to_install():
    reading = readings.Reading("the thing", owner="someapp")
    with pytest.raises(readings.ReaderMissing, match="'someapp' app"):
        reading()


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            BrokerRejected("GET /v2/account -> HTTP 401", status=401, code=None, broker_message=""),
            "the broker refused the API keys: GET /v2/account -> HTTP 401 (",
        ),
        (
            BrokerRejected("POST /v2/orders -> HTTP 403", status=403, code=1, broker_message=""),
            "the broker refused the request: POST /v2/orders -> HTTP 403",
        ),
        (BrokerUnavailable("GET /v2/positions: timeout"), "the broker is unavailable: GET"),
        (SignalStoreUnavailable("deadline"), "the signal store is unavailable: deadline"),
    ],
)
def test_a_doors_error_gives_the_scaffolding_its_operator_line(error, line):
    assert operator_error(error).startswith(line)


def test_a_bug_keeps_its_traceback():
    assert operator_error(ValueError("bug")) is None
