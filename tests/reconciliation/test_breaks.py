"""Breaks (docs/design.md section 17): runs open, see again, clear and reopen them by key; people
move them through four eyes; every change is a chained event."""

from decimal import Decimal as D
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.db import DatabaseError, connection, transaction

from audit import triggers
from audit.services import audit_verify
from reconciliation.breaks import (
    TEXT_MAX,
    BreakRefused,
    break_acknowledge,
    break_approve,
    break_comment,
    break_propose,
    break_reject,
    break_review,
    breaks_close_repaired,
)
from reconciliation.diff import Finding, ReconciliationErrors, Severity
from reconciliation.models import Break, BreakEvent, Mismatch
from reconciliation.plan import PlannedRepair, Verdict
from reconciliation.records import mismatches_record
from tests import factories

pytestmark = pytest.mark.django_db

QTY = ReconciliationErrors.QTY_MISMATCH
ORPHAN = ReconciliationErrors.ORPHAN_POSITION


def finding(kind=QTY, symbol="TSLA", signal_ids=("s-1",), severity=Severity.WARNING, **extra):
    return Finding(
        kind=kind,
        severity=severity,
        symbol=symbol,
        signal_id=",".join(signal_ids),
        signal_ids=tuple(signal_ids),
        expected_qty=D(10),
        actual_qty=D(7),
        **extra,
    )


def run_with(*findings, account="default", dry_run=False):
    run = factories.reconciliation_run(account=account, dry_run=dry_run)
    planned = [PlannedRepair(finding=f, verdict=Verdict.FLAG) for f in findings]
    return run, mismatches_record(run=run, planned=planned, dry_run=dry_run)


def events(brk):
    return list(brk.events.values_list("kind", flat=True))


def test_a_new_discrepancy_opens_a_break_and_its_mismatch_links_to_it():
    run, (row,) = run_with(finding())
    brk = Break.objects.get()
    assert row.break_case_id == brk.pk
    assert (brk.state, brk.occurrences, brk.first_run, brk.last_run) == ("open", 1, run, run)
    assert brk.signal_ids == ["s-1"] and brk.symbol == "TSLA" and brk.kind == QTY.value
    assert (brk.due_at - brk.opened_at).total_seconds() == 86400  # warning: a day
    assert events(brk) == ["opened"]


def test_the_same_discrepancy_is_seen_again_not_filed_again():
    run_with(finding(signal_ids=("s-2", "s-1")))
    second, (row,) = run_with(finding(signal_ids=("s-1", "s-2")))  # the order of ids is no matter
    brk = Break.objects.get()
    assert row.break_case_id == brk.pk
    assert (brk.occurrences, brk.last_run, brk.state) == (2, second, "open")
    assert events(brk) == ["opened"]  # being seen again is the mismatch row, not an event
    assert brk.mismatches.count() == 2


def test_a_break_no_run_finds_is_cleared_and_comes_back_with_its_history():
    run_with(finding(), finding(kind=ORPHAN, symbol="ETH/USD", signal_ids=("s-eth",)))
    clearing, _ = run_with(finding())
    orphan = Break.objects.get(kind=ORPHAN.value)
    assert (orphan.state, orphan.cleared_by_run) == ("resolved", clearing)
    assert orphan.events.get(kind="cleared").message == f"cleared by run #{clearing.pk}"
    assert Break.objects.get(kind=QTY.value).state == "open"

    _, (_, again) = run_with(  # the orphan comes back
        finding(), finding(kind=ORPHAN, symbol="ETH/USD", signal_ids=("s-eth",))
    )
    orphan.refresh_from_db()
    assert Break.objects.count() == 2
    assert (orphan.state, orphan.cleared_by_run, orphan.occurrences) == ("open", None, 2)
    assert again.break_case_id == orphan.pk
    assert events(orphan) == ["opened", "cleared", "reopened"]


def test_breaks_are_per_account():
    run_with(finding(), account="desk")
    run_with(finding(), account="client")
    assert Break.objects.count() == 2
    run_with(account="desk")  # desk's run finds nothing: only desk's break clears
    assert dict(Break.objects.values_list("account", "state")) == {
        "desk": "resolved",
        "client": "open",
    }


def test_a_dry_run_changes_no_break():
    run_with(finding())
    before = list(Break.objects.values())
    _, (row,) = run_with(finding(symbol="NEW"), dry_run=True)
    assert row.break_case_id is None
    assert list(Break.objects.values()) == before


def test_a_repaired_break_is_closed_by_the_run_for_review():
    run, (row,) = run_with(finding(kind=ORPHAN, symbol="ETH/USD", signal_ids=("s-eth",)))
    assert breaks_close_repaired(run=run, mismatches=[row]) == 1
    brk = Break.objects.get()
    assert (brk.state, brk.disposition, brk.needs_review) == ("closed", "repaired", True)
    compliance = factories.staff_user(group="compliance")
    brk = break_review(break_id=brk.pk, user=compliance, comment="checked the fill")
    assert not brk.needs_review
    assert events(brk) == ["opened", "repaired", "reviewed"]


def test_a_signed_off_break_stays_closed_while_found_and_reopens_after_it_cleared():
    run_with(finding())
    brk = _closed(Break.objects.get())
    run_with(finding())
    brk.refresh_from_db()
    assert (brk.state, brk.occurrences) == ("closed", 2)
    run_with()
    run_with(finding())
    brk.refresh_from_db()
    assert brk.state == "open" and brk.disposition == "" and brk.approved_by_username == ""
    assert events(brk)[-2:] == ["cleared", "reopened"]


def _closed(brk):
    operator = factories.staff_user(group="operations")
    compliance = factories.staff_user(group="compliance")
    break_acknowledge(break_id=brk.pk, user=operator, comment="mine")
    break_propose(break_id=brk.pk, user=operator, disposition="accepted", reason="known lag")
    return break_approve(break_id=brk.pk, user=compliance)


def test_four_eyes_operations_propose_and_compliance_approves():
    run_with(finding())
    brk = _closed(Break.objects.get())
    assert (brk.state, brk.disposition, brk.reason) == ("closed", "accepted", "known lag")
    assert brk.proposed_by_username.startswith("operations")
    assert brk.approved_by_username.startswith("compliance")
    assert events(brk) == ["opened", "acknowledged", "proposed", "approved"]
    assert [e.actor for e in brk.events.all()][1:] == [
        brk.owner_username,
        brk.proposed_by_username,
        brk.approved_by_username,
    ]


@pytest.mark.parametrize("superuser", [False, True])
def test_the_proposer_can_never_approve(superuser):
    run_with(finding())
    brk = Break.objects.get()
    user = User.objects.create_user("both", is_staff=True, is_superuser=superuser)
    if not superuser:
        user.user_permissions.add(*_perms("propose_break", "approve_break"))
        user = User.objects.get(pk=user.pk)
    break_acknowledge(break_id=brk.pk, user=user, comment="mine")
    break_propose(break_id=brk.pk, user=user, disposition="explained", reason="a late fill")
    with pytest.raises(BreakRefused, match="four eyes"):
        break_approve(break_id=brk.pk, user=user)
    brk.refresh_from_db()
    assert brk.state == "proposed" and events(brk)[-1] == "proposed"


def _perms(*codenames):
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(codename__in=codenames)


def test_each_step_needs_its_own_permission():
    run_with(finding())
    brk = Break.objects.get()
    operator = factories.staff_user(group="operations")
    compliance = factories.staff_user(group="compliance")
    viewer = User.objects.create_user("viewer", is_staff=True)
    with pytest.raises(BreakRefused, match="not work on them"):
        break_comment(break_id=brk.pk, user=viewer, text="hello")
    break_acknowledge(break_id=brk.pk, user=operator, comment="mine")
    with pytest.raises(BreakRefused, match="propose_break"):
        break_propose(break_id=brk.pk, user=compliance, disposition="accepted", reason="x")
    break_propose(break_id=brk.pk, user=operator, disposition="accepted", reason="x")
    other_operator = factories.staff_user(group="operations")
    with pytest.raises(BreakRefused, match="approve_break"):
        break_approve(break_id=brk.pk, user=other_operator)
    assert events(Break.objects.get()) == ["opened", "acknowledged", "proposed"]


def test_a_rejection_needs_a_reason_and_reopens():
    run_with(finding())
    brk = Break.objects.get()
    operator = factories.staff_user(group="operations")
    compliance = factories.staff_user(group="compliance")
    break_acknowledge(break_id=brk.pk, user=operator, comment="mine")
    break_propose(break_id=brk.pk, user=operator, disposition="written_off", reason="small")
    with pytest.raises(BreakRefused, match="A reason is required"):
        break_reject(break_id=brk.pk, user=compliance, reason="  ")
    brk = break_reject(break_id=brk.pk, user=compliance, reason="not small: 3 shares")
    assert (brk.state, brk.disposition, brk.owner_username) == ("open", "", operator.username)
    assert brk.events.last().message == "not small: 3 shares"


def test_states_refuse_steps_out_of_order_and_bad_dispositions():
    run_with(finding())
    brk = Break.objects.get()
    operator = factories.staff_user(group="operations")
    compliance = factories.staff_user(group="compliance")
    with pytest.raises(BreakRefused, match="is open: it cannot be proposed now"):
        break_propose(break_id=brk.pk, user=operator, disposition="accepted", reason="x")
    with pytest.raises(BreakRefused, match="cannot be approved"):
        break_approve(break_id=brk.pk, user=compliance)
    break_acknowledge(break_id=brk.pk, user=operator, comment="mine")
    with pytest.raises(BreakRefused, match="not a disposition"):
        break_propose(break_id=brk.pk, user=operator, disposition="repaired", reason="x")
    with pytest.raises(BreakRefused, match="does not exist"):
        break_comment(break_id=brk.pk + 1000, user=operator, text="x")


def test_comments_are_events_kept_verbatim_and_bounded():
    run_with(finding())
    brk = Break.objects.get()
    operator = factories.staff_user(group="operations")
    html = "<script>alert('x')</script> & <b>bold</b>"
    break_comment(break_id=brk.pk, user=operator, text=html)
    assert brk.events.last().message == html  # stored as written; pages escape it
    with pytest.raises(BreakRefused, match=f"the limit is {TEXT_MAX:,}"):
        break_comment(break_id=brk.pk, user=operator, text="x" * 100_000)
    assert events(brk) == ["opened", "commented"]


def test_break_events_are_append_only_and_verified():
    run_with(finding())
    brk = Break.objects.get()
    operator = factories.staff_user(group="operations")
    for text in ("one", "two", "three"):
        break_comment(break_id=brk.pk, user=operator, text=text)
    rows = list(BreakEvent.objects.order_by("pk"))
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        BreakEvent.objects.filter(pk=rows[0].pk).update(message="rewritten")
    result = audit_verify(trigger="command", processes=1)
    assert result.ok and result.reports["break_events"].rows == 4
    triggers.remove(SimpleNamespace(connection=connection), ["reconciliation_breakevent"])
    BreakEvent.objects.filter(pk=rows[1].pk).update(message="rewritten")
    BreakEvent.objects.filter(pk=rows[2].pk).delete()
    problems = [
        str(p)
        for p in audit_verify(trigger="command", processes=1).reports["break_events"].problems
    ]
    assert f"break_events row {rows[1].pk}: content does not match its hash" in problems[0]
    assert any(
        p.startswith(f"break_events row {rows[3].pk}: prev_hash does not name") for p in problems
    )


def test_a_break_keeps_its_history_when_its_signal_is_gone():
    run_with(finding(kind=ORPHAN, symbol="ETH/USD", signal_ids=("s-eth",)))
    run_with()  # the signal was deleted: nothing found any more
    brk = Break.objects.get()
    assert brk.state == "resolved" and brk.signal_ids == ["s-eth"]
    assert brk.mismatches.get().signal_id == "s-eth"
    assert Mismatch.objects.filter(break_case=brk).count() == 1
