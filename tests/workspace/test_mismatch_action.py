"""A repair's row tells its outcome (issue 20, point 3; docs/design.md sections 4 and 7).

A repaired mismatch is stored ``repair_started`` before the repair and its outcome is a later
event: the list's Action column, its Action filter, the CSV export, ``reconcile --json`` and the
change page all read the outcome. "No outcome recorded" is only for a run that stopped between
the two; a run still repairing says so.
"""

import csv
import io
import re

import pytest
from django.urls import reverse

from reconciliation.diff import ReconciliationErrors
from reconciliation.models import Mismatch, ReconciliationRun
from reconciliation.report import run_as_json
from tests import factories
from tests.workspace.helpers import record_mismatch

pytestmark = pytest.mark.django_db

Action = Mismatch.Action
Status = ReconciliationRun.Status
CLOSED = "Signal moved to CLOSED_MANUAL"
STOPPED = "Repair started (no outcome recorded: it stopped)"


@pytest.fixture
def compliance_client(client):
    client.force_login(factories.staff_user(group="compliance"))
    return client


@pytest.fixture
def rows() -> dict[str, Mismatch]:
    """A run that repaired an orphan and flagged a quantity; a run that died mid-repair; a run
    still repairing."""
    done = factories.reconciliation_run()
    died = factories.reconciliation_run(status=Status.FAILED, error="abandoned")
    running = factories.reconciliation_run(status=Status.RUNNING)
    return {
        "closed": record_mismatch(
            run=done,
            kind=ReconciliationErrors.ORPHAN_POSITION,
            symbol="ETHUSD",
            signal_id="closed",
            outcome=(Action.SIGNAL_CLOSED_MANUAL, ""),
        ),
        "flagged": record_mismatch(
            run=done, kind=ReconciliationErrors.QTY_MISMATCH, symbol="TSLA", signal_id="flagged"
        ),
        "stopped": _started(run=died, signal_id="stopped"),
        "running": _started(run=running, signal_id="running"),
    }


def _started(*, run: ReconciliationRun, signal_id: str) -> Mismatch:
    return factories.mismatch(run=run, signal_id=signal_id, action=Action.REPAIR_STARTED)


def listed(client, params: dict | None = None) -> dict[str, str]:
    """signal id -> the Action cell, as the list page renders it."""
    page = client.get(reverse("admin:reconciliation_mismatch_changelist"), params or {})
    assert page.status_code == 200
    admin = page.context["cl"].model_admin
    return {m.signal_id: str(admin.action_display(m)) for m in page.context["cl"].result_list}


def exported(client, params: dict | None = None) -> dict[str, str]:
    response = client.get(reverse("admin:reconciliation_mismatch_export"), params or {})
    text = b"".join(response.streaming_content).decode()
    header, *body = csv.reader(io.StringIO(text))
    return {row[header.index("Signal id")]: row[header.index("Action")] for row in body}


def test_the_action_column_reads_the_outcome(compliance_client, rows):
    cells = listed(compliance_client)
    assert cells["closed"] == CLOSED
    assert cells["flagged"] == "Flagged only"
    assert cells["stopped"] == STOPPED
    assert cells["running"] == "Repair started (in progress)"
    html = compliance_client.get(reverse("admin:reconciliation_mismatch_changelist")).content
    cells = re.findall(r'<td class="field-action_display">([^<]*)</td>', html.decode())
    assert sorted(cells) == sorted(
        [CLOSED, "Flagged only", STOPPED, "Repair started (in progress)"]
    )


def test_the_action_filter_reads_the_outcome(compliance_client, rows):
    assert set(listed(compliance_client, {"action__exact": Action.SIGNAL_CLOSED_MANUAL})) == {
        "closed"
    }
    assert set(listed(compliance_client, {"action__exact": Action.REPAIR_STARTED})) == {
        "stopped",
        "running",
    }
    assert set(listed(compliance_client, {"action__exact": Action.FLAGGED})) == {"flagged"}


def test_the_filter_offers_every_action_once(compliance_client, rows):
    page = compliance_client.get(reverse("admin:reconciliation_mismatch_changelist"))
    (spec,) = [s for s in page.context["cl"].filter_specs if s.title == "action"]
    labels = [c["display"] for c in spec.choices(page.context["cl"])]
    assert labels.count(CLOSED) == 1 and labels.count(STOPPED) == 1


def test_the_export_carries_the_outcome_and_follows_the_filter(compliance_client, rows):
    assert exported(compliance_client)["closed"] == CLOSED
    assert exported(compliance_client, {"action__exact": Action.SIGNAL_CLOSED_MANUAL}) == {
        "closed": CLOSED
    }


def test_the_change_page_reads_the_outcome_and_keeps_what_was_stored(compliance_client, rows):
    page = compliance_client.get(
        reverse("admin:reconciliation_mismatch_change", args=[rows["closed"].pk])
    ).content.decode()
    assert CLOSED in page
    assert STOPPED not in page


def test_the_json_report_reads_the_outcome(rows):
    report = run_as_json(rows["closed"].run)
    assert {m["signal_id"]: m["action"] for m in report["mismatches"]} == {
        "closed": Action.SIGNAL_CLOSED_MANUAL,
        "flagged": Action.FLAGGED,
    }


def test_one_definition_reads_the_outcome_in_the_database(rows):
    closed = Mismatch.objects.ended_as(Action.SIGNAL_CLOSED_MANUAL)
    assert list(closed.values_list("signal_id", flat=True)) == ["closed"]
    finals = dict(Mismatch.objects.with_final_action().values_list("signal_id", "final_action"))
    # The filter's form of the rule gives the annotation's answer, for every action.
    for action in Action.values:
        ended = set(Mismatch.objects.ended_as(action).values_list("signal_id", flat=True))
        assert ended == {s for s, final in finals.items() if final == action}, action
    assert finals == {
        "closed": Action.SIGNAL_CLOSED_MANUAL,
        "flagged": Action.FLAGGED,
        "stopped": Action.REPAIR_STARTED,
        "running": Action.REPAIR_STARTED,
    }


def test_the_runs_page_lists_its_mismatches_by_outcome(compliance_client, rows):
    page = compliance_client.get(
        reverse("admin:reconciliation_reconciliationrun_change", args=[rows["closed"].run_id])
    ).content.decode()
    cells = re.findall(r'field-action_display">\s*<p>([^<]*)</p>', page)
    assert sorted(cells) == sorted([CLOSED, "Flagged only"])
