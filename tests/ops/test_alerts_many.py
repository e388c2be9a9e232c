"""Many sightings at once (a run's orphans): the same alerts as raising each in turn, in a few
statements (docs/design.md section 13)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import Alert
from alerts.runs import alerts_reconciliation_run_finished
from alerts.services import alerts_raise, alerts_raise_many, alerts_resolve
from tests import factories

pytestmark = pytest.mark.django_db

ORPHAN = Alert.Kind.ORPHAN_POSITION


def state(key: str) -> tuple:
    alert = Alert.objects.get(key=key)
    return (alert.times_seen, alert.notifications, alert.resolved_at is None, alert.subject)


def test_many_sightings_end_as_raising_each_in_turn(settings):
    settings.ALERT_REALERT_S = 3600
    now = timezone.now()
    alerts_raise(kind=ORPHAN, key="seen", subject="s0", body="b", now=now)
    alerts_raise(kind=ORPHAN, key="due", subject="d0", body="b", now=now - timedelta(hours=2))
    alerts_raise(kind=ORPHAN, key="back", subject="k0", body="b", now=now)
    alerts_resolve(kind=ORPHAN, key="back", now=now)

    raised = alerts_raise_many(
        [(ORPHAN, k, f"{k}1", "b") for k in ("new", "seen", "due", "back")], now=now
    )

    assert [r.notified for r in raised] == [True, False, True, True]
    assert state("new") == (1, 1, True, "new1")
    assert state("seen") == (2, 1, True, "s0")  # counted, no message (not due again)
    assert state("due") == (2, 2, True, "due1")  # ALERT_REALERT_S passed: a message again
    assert state("back") == (1, 2, True, "back1")  # resolved before: a new episode
    assert all(r.alert.pk for r in raised)


def test_a_runs_thousand_orphans_take_a_few_statements():
    run = factories.reconciliation_run(status="succeeded", finished_at=timezone.now())
    for i in range(300):
        factories.mismatch(run=run, symbol=f"S{i}", signal_id=f"sig{i}")

    with CaptureQueriesContext(connection) as captured:
        alerts_reconciliation_run_finished(run=run)

    assert Alert.objects.filter(kind=ORPHAN, resolved_at__isnull=True).count() == 300
    # Read the orphans, read and lock their alerts, insert them, the savepoint's two, the
    # resolutions: not a savepoint, a look-up and an insert per orphan (about 1,200).
    assert len(captured) < 20, [q["sql"][:80] for q in captured]
