"""`manage.py breaks` (docs/design.md sections 10 and 17): a table or JSON with the section's
fields, by account and state; one clear line for an unknown account or state."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from reconciliation.breaks import break_acknowledge, break_approve, break_propose
from reconciliation.diff import Severity
from reconciliation.models import Break
from tests import factories
from tests.reconciliation.test_breaks import ORPHAN, finding, run_with

pytestmark = pytest.mark.django_db

FIELDS = [
    "id", "account", "kind", "symbol", "signal_ids", "client_order_id", "state", "severity",
    "opened_at", "last_seen_at", "occurrences", "owner", "due_at", "overdue", "resolution",
]  # fmt: skip


def breaks(*args: str) -> str:
    out = io.StringIO()
    call_command("breaks", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def book():
    """Three breaks of the default account: TSLA open and overdue, an orphan acknowledged, NVDA
    signed off by compliance; and one of another account."""
    operator = factories.staff_user(group="operations")
    compliance = factories.staff_user(group="compliance")
    run_with(
        finding(),
        finding(kind=ORPHAN, symbol="ETH/USD", signal_ids=("s-eth",), severity=Severity.CRITICAL),
        finding(symbol="NVDA", signal_ids=("s-n2", "s-n1")),
    )
    run_with(finding(), account="client")
    tsla, eth, nvda = Break.objects.filter(account="default").order_by("pk")
    Break.objects.filter(pk=tsla.pk).update(due_at=timezone.now() - timedelta(minutes=5))
    break_acknowledge(break_id=eth.pk, user=operator, comment="looking")
    break_acknowledge(break_id=nvda.pk, user=operator, comment="mine")
    break_propose(break_id=nvda.pk, user=operator, disposition="accepted", reason="a split")
    break_approve(break_id=nvda.pk, user=compliance)
    return tsla, eth, nvda, operator, compliance


def test_json_lists_the_live_breaks_of_the_default_account_with_exactly_the_fields(book):
    tsla, eth, _, operator, _ = book
    listed = json.loads(breaks("--json"))
    assert [b["id"] for b in listed] == [tsla.pk, eth.pk]  # most urgent first; closed left out
    assert all(list(b) == FIELDS for b in listed)
    first = listed[0]
    assert (first["account"], first["kind"], first["symbol"], first["signal_ids"]) == (
        "default", "QTY_MISMATCH", "TSLA", ["s-1"],
    )  # fmt: skip
    assert (first["state"], first["overdue"], first["owner"], first["resolution"]) == (
        "open", True, None, None,
    )  # fmt: skip
    assert (listed[1]["state"], listed[1]["owner"]) == ("acknowledged", operator.username)
    assert listed[1]["overdue"] is False


def test_closed_breaks_carry_their_resolution(book):
    _, _, nvda, operator, compliance = book
    (closed,) = json.loads(breaks("--json", "--state", "closed"))
    assert closed["id"] == nvda.pk and closed["signal_ids"] == ["s-n1", "s-n2"]
    resolution = closed["resolution"]
    assert (resolution["disposition"], resolution["reason"]) == ("accepted", "a split")
    assert (resolution["proposed_by"], resolution["approved_by"]) == (
        operator.username, compliance.username,
    )  # fmt: skip
    assert closed["overdue"] is False
    assert len(json.loads(breaks("--json", "--state", "all"))) == 3
    assert len(json.loads(breaks("--json", "--all", "--state", "all"))) == 4


def test_the_table_is_readable(book):
    tsla, eth, _, operator, _ = book
    lines = breaks().splitlines()
    assert lines[0].split()[:5] == ["id", "account", "state", "severity", "kind"]
    assert f"#{tsla.pk}" in lines[1] and "OVERDUE" in lines[1] and "TSLA" in lines[1]
    assert f"#{eth.pk}" in lines[2] and "ETH/USD" in lines[2] and operator.username in lines[2]
    assert lines[-1] == "2 break(s)"


def test_an_unknown_account_or_state_is_one_clear_line(book):
    with pytest.raises(CommandError, match=r"no account 'nope' \(accounts: default\)"):
        breaks("--account", "nope")
    with pytest.raises(CommandError, match="invalid choice: 'pending'"):
        breaks("--state", "pending")
