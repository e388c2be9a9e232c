"""The evidence pack of one break (docs/design.md sections 17 and 19): the break, every event of
its story, every run's occurrence of it and what the runs did, each chained row with its hash;
checked offline like any pack."""

import csv
import io

import pytest
from django.core.management import CommandError

from audit.services import audit_verify, chain_heads_record
from evidence.check import evidence_check
from reconciliation.breaks import break_acknowledge, break_comment
from reconciliation.models import Break
from tests import factories
from tests.evidence.test_pack import KEY, build, read_csv, rewrite
from tests.reconciliation.test_breaks import finding, run_with

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def key(settings):
    settings.AUDIT_HMAC_KEY = KEY


@pytest.fixture
def case():
    run_with(finding(symbol="TSLA", signal_ids=("s-1",)))
    run_with(finding(symbol="TSLA", signal_ids=("s-1",)), finding(symbol="OTHER"))
    brk = Break.objects.get(symbol="TSLA")
    operator = factories.staff_user(group="operations")
    break_acknowledge(break_id=brk.pk, user=operator, comment="mine")
    break_comment(break_id=brk.pk, user=operator, text="=cmd|' /C calc'!A0")
    chain_heads_record(recorded_by="test")
    audit_verify(trigger="command", processes=1)
    return brk


def test_a_pack_of_one_break_holds_its_story_and_its_occurrences(tmp_path, case):
    path = build(tmp_path, "--break", str(case.pk))
    assert evidence_check(path, key=KEY) == []
    (header, row) = read_csv(path, "breaks.csv")
    assert dict(zip(header, row, strict=True))["symbol"] == "TSLA"
    events = read_csv(path, "break_events.csv")
    kinds = [dict(zip(events[0], r, strict=True))["kind"] for r in events[1:]]
    assert kinds == ["opened", "acknowledged", "commented"]
    assert "'=cmd|' /C calc'!A0" in {c for r in events for c in r}  # neutralised, kept whole
    mismatches = read_csv(path, "mismatches.csv")
    symbols = [dict(zip(mismatches[0], r, strict=True))["symbol"] for r in mismatches[1:]]
    assert symbols == ["TSLA", "TSLA"]  # both runs' occurrences, not the other break's


def test_an_edited_break_event_is_named(tmp_path, case):
    path = build(tmp_path, "--break", str(case.pk))
    rows = read_csv(path, "break_events.csv")
    rows[2][rows[0].index("message")] = "nobody's"
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    rewrite(path, "break_events.csv", out.getvalue().encode())
    problems = evidence_check(path, key=KEY)
    assert any("break_events.csv" in p for p in problems), problems


def test_an_unknown_break_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(CommandError, match="no break #999"):
        build(tmp_path, "--break", "999")
    assert not (tmp_path / "pack.zip").exists()


def test_a_break_and_an_order_at_once_are_refused(tmp_path, case):
    with pytest.raises(CommandError, match="give one of"):
        build(tmp_path, "--break", str(case.pk), "--order", "bo-x")
    assert not (tmp_path / "pack.zip").exists()


def test_the_admin_pack_of_another_accounts_break_is_a_404(client, case):
    from workspace.models import AccountGrant

    compliance = factories.staff_user(group="compliance")
    AccountGrant.objects.create(user=compliance, account="elsewhere")
    client.force_login(compliance)
    answer = client.get("/admin/evidence/", {"break": case.pk})
    assert answer.status_code == 404
    assert client.get("/admin/evidence/", {"break": "x1"}).status_code == 400
