"""Breaks under races (docs/design.md section 17), with real OS processes on the real database:
two runs finishing at once never open one discrepancy twice, and of a proposal and an approval
racing on one break exactly one outcome holds."""

import multiprocessing

import pytest
from django.db import connections

from reconciliation.breaks import (
    BreakRefused,
    break_acknowledge,
    break_approve,
    break_propose,
    break_reject,
)
from reconciliation.models import Break, BreakEvent
from tests import factories
from tests.reconciliation.test_breaks import finding, run_with

pytestmark = pytest.mark.django_db(transaction=True)
ROUNDS = 5


def _record(run_id: int, start, done) -> None:
    from reconciliation.models import ReconciliationRun
    from reconciliation.plan import PlannedRepair, Verdict
    from reconciliation.records import mismatches_record

    connections.close_all()  # never share the parent's socket
    run = ReconciliationRun.objects.get(pk=run_id)
    planned = [
        PlannedRepair(finding=finding(symbol=f"S{i}"), verdict=Verdict.FLAG) for i in range(50)
    ]
    start.wait(timeout=30)
    try:
        rows = mismatches_record(run=run, planned=planned, dry_run=False)
        done.put(sorted(r.break_case_id for r in rows))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        done.put(repr(exc))
    connections.close_all()


def test_two_runs_finishing_at_once_open_each_break_once():
    runs = [factories.reconciliation_run(account="desk") for _ in range(2)]
    connections.close_all()
    context = multiprocessing.get_context("fork")
    start, done = context.Event(), context.Queue()
    workers = [context.Process(target=_record, args=(r.pk, start, done)) for r in runs]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=60)
    linked = [done.get(timeout=5) for _ in workers]
    assert [w.exitcode for w in workers] == [0, 0]
    assert linked[0] == linked[1], linked  # both runs' rows name the same 50 breaks
    assert Break.objects.count() == 50
    assert sorted(Break.objects.values_list("occurrences", flat=True)) == [2] * 50
    assert BreakEvent.objects.filter(kind="opened").count() == 50


def _act(break_id: int, user_id: int, action: str, start, done) -> None:
    from django.contrib.auth.models import User

    connections.close_all()
    user = User.objects.get(pk=user_id)
    start.wait(timeout=30)
    try:
        if action == "approve":
            break_approve(break_id=break_id, user=user)
        elif action == "reject":
            break_reject(break_id=break_id, user=user, reason="not convinced")
        else:
            break_propose(break_id=break_id, user=user, disposition="accepted", reason="known")
        done.put((action, "done"))
    except BreakRefused as exc:
        done.put((action, str(exc)))
    connections.close_all()


def _race(break_id: int, *acts: tuple[int, str]) -> dict[str, str]:
    connections.close_all()
    context = multiprocessing.get_context("fork")
    start, done = context.Event(), context.Queue()
    workers = [
        context.Process(target=_act, args=(break_id, user_id, action, start, done))
        for user_id, action in acts
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0] * len(workers)
    return dict(done.get(timeout=5) for _ in workers)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_proposal_and_an_approval_racing_end_in_one_outcome(round_):
    run_with(finding())
    brk = Break.objects.get()
    operator = factories.staff_user(group="operations")
    compliance = factories.staff_user(group="compliance")
    break_acknowledge(break_id=brk.pk, user=operator, comment="mine")
    outcomes = _race(brk.pk, (operator.pk, "propose"), (compliance.pk, "approve"))
    brk.refresh_from_db()
    kinds = list(brk.events.values_list("kind", flat=True))
    assert outcomes["propose"] == "done"
    if outcomes["approve"] == "done":  # the proposal came first, then its approval
        assert (brk.state, kinds[-2:]) == ("closed", ["proposed", "approved"])
    else:  # the approval came first: nothing to approve yet
        assert "cannot be approved now" in outcomes["approve"]
        assert (brk.state, kinds[-1]) == ("proposed", "proposed")
    assert brk.disposition == "accepted" and kinds.count("proposed") == 1


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_an_approval_and_a_rejection_racing_end_in_one_outcome(round_):
    run_with(finding())
    brk = Break.objects.get()
    operator = factories.staff_user(group="operations")
    first, second = (factories.staff_user(group="compliance") for _ in range(2))
    break_acknowledge(break_id=brk.pk, user=operator, comment="mine")
    break_propose(break_id=brk.pk, user=operator, disposition="explained", reason="late fill")
    outcomes = _race(brk.pk, (first.pk, "approve"), (second.pk, "reject"))
    brk.refresh_from_db()
    kinds = list(brk.events.values_list("kind", flat=True))
    assert sorted(o == "done" for o in outcomes.values()) == [False, True]
    winner = next(a for a, o in outcomes.items() if o == "done")
    assert kinds[-1] == {"approve": "approved", "reject": "rejected"}[winner]
    assert brk.state == {"approve": "closed", "reject": "open"}[winner]
    assert "approved" not in kinds or "rejected" not in kinds
