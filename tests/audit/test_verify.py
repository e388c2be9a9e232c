"""``verify_audit`` names every kind of tampering (docs/design.md section 12).

Each test tampers the way someone with database access would: drop the append-only trigger,
then change, delete, reorder or forge rows in raw SQL.
"""

import io
import json
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit import triggers
from audit.chain import CHAINS_BY_NAME, row_hash
from audit.models import AuditVerification, ChainHead
from audit.services import audit_verify, chain_heads_record
from orders.models import OrderEvent
from tests.audit._trail import write_trail

pytestmark = pytest.mark.django_db
KEY = "test-audit-key-not-a-secret"


@pytest.fixture
def trail(settings):
    settings.AUDIT_HMAC_KEY = KEY
    written = write_trail(events=6)
    chain_heads_record(recorded_by="reconciliation run #1")
    return written


def drop_triggers(*tables: str) -> None:
    triggers.remove(SimpleNamespace(connection=connection), list(tables))


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def event_ids() -> list[int]:
    return list(OrderEvent.objects.order_by("pk").values_list("pk", flat=True))


def verify(**kw):
    return audit_verify(trigger="command", processes=1, **kw)


def test_an_untouched_trail_verifies_and_the_command_says_so(trail):
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    text = out.getvalue()
    assert "order_events: 6 rows" in text and "mismatches: 2 rows" in text
    assert "run_events: 3 rows" in text
    assert "audit trail intact" in text
    verification = AuditVerification.objects.get()
    assert verification.ok and verification.rows_checked == 11 and verification.heads_checked == 3
    # An intact trail gets fresh heads, signed.
    assert ChainHead.objects.filter(recorded_by__startswith="verify_audit").count() == 3
    assert not ChainHead.objects.filter(signature="").exists()


def test_a_changed_row_is_named(trail):
    drop_triggers("orders_orderevent")
    target = event_ids()[2]
    sql("UPDATE orders_orderevent SET message = %s WHERE id = %s", ["forged", target])

    result = verify()

    assert not result.ok
    assert result.verification.first_problem == (
        f"order_events row {target}: content does not match its hash: changed after it was written"
    )


def test_a_changed_json_payload_is_named(trail):
    drop_triggers("orders_orderevent")
    target = event_ids()[4]
    event = OrderEvent.objects.get(pk=target)
    sql(
        "UPDATE orders_orderevent SET payload = %s WHERE id = %s",
        [json.dumps({**event.payload, "qty": "15"}), target],
    )
    assert f"row {target}: content does not match" in verify().verification.first_problem


def test_a_deleted_row_is_named_by_the_row_after_it(trail):
    drop_triggers("orders_orderevent")
    ids = event_ids()
    sql("DELETE FROM orders_orderevent WHERE id = %s", [ids[3]])

    problem = verify().verification.first_problem

    assert problem.startswith(f"order_events row {ids[4]}: prev_hash does not name the row before")
    assert f"(row {ids[2]})" in problem and "deleted" in problem


def test_deleted_first_rows_are_named(trail):
    drop_triggers("orders_orderevent")
    ids = event_ids()
    sql("DELETE FROM orders_orderevent WHERE id <= %s", [ids[1]])
    problem = verify().verification.first_problem
    assert problem == (
        f"order_events row {ids[2]}: prev_hash does not name the row before it: the rows before"
        " it are missing"
    )


def test_a_deleted_last_row_is_named_by_the_recorded_head(trail):
    drop_triggers("orders_orderevent")
    last = event_ids()[-1]
    sql("DELETE FROM orders_orderevent WHERE id = %s", [last])
    problem = verify().verification.first_problem
    assert problem.startswith(f"order_events row {last}: head #")
    assert problem.endswith("which is missing")


def test_a_reordered_pair_is_named(trail):
    drop_triggers("orders_orderevent")
    ids = event_ids()
    a, b = ids[1], ids[2]
    sql("UPDATE orders_orderevent SET id = -1 WHERE id = %s", [a])
    sql("UPDATE orders_orderevent SET id = %s WHERE id = %s", [a, b])
    sql("UPDATE orders_orderevent SET id = %s WHERE id = -1", [b])

    result = verify()

    assert result.verification.first_problem.startswith(
        f"order_events row {a}: prev_hash does not name the row before it (row {ids[0]})"
    )


def _rewrite_chain_from(row_id: int, message: str) -> str:
    """What a forger without the key does: change a row and recompute every hash after it."""
    spec = CHAINS_BY_NAME["order_events"]
    sql("UPDATE orders_orderevent SET message = %s WHERE id = %s", [message, row_id])
    previous = OrderEvent.objects.filter(pk__lt=row_id).order_by("-pk").first()
    prev = previous.hash if previous else ""
    rows = OrderEvent.objects.filter(pk__gte=row_id).order_by("pk").values_list("pk", *spec.fields)
    for pk, *values in rows:
        new = row_hash(prev, dict(zip(spec.fields, values, strict=True)))
        sql("UPDATE orders_orderevent SET prev_hash = %s, hash = %s WHERE id = %s", [prev, new, pk])
        prev = new
    return prev


def test_a_recomputed_chain_is_named_by_the_heads_the_runs_recorded(trail):
    drop_triggers("orders_orderevent")
    target = event_ids()[1]
    _rewrite_chain_from(target, "forged")

    result = verify()

    report = result.reports["order_events"]
    assert all("content does not match" not in str(p) for p in report.problems)  # consistent
    assert "the chain was rewritten" in result.verification.first_problem


def test_a_forged_chain_and_heads_without_the_key_are_named_by_the_signature(trail):
    drop_triggers("orders_orderevent", "audit_chainhead")
    ids = event_ids()
    new_head = _rewrite_chain_from(ids[1], "forged")
    sql("UPDATE audit_chainhead SET hash = %s WHERE chain = 'order_events'", [new_head])

    result = verify()

    assert not result.ok
    assert result.verification.first_problem.endswith("its signature does not match the key")
    assert f"order_events row {ids[-1]}: head #" in result.verification.first_problem


def test_without_the_key_signed_heads_are_not_taken_on_trust(trail, settings):
    settings.AUDIT_HMAC_KEY = None
    result = verify()
    assert result.ok
    assert result.notes == ["head signatures not checked: AUDIT_HMAC_KEY is not set here"]


def test_an_unsigned_head_after_signed_ones_is_named(trail, settings):
    settings.AUDIT_HMAC_KEY = None
    chain_heads_record(recorded_by="someone without the key")
    settings.AUDIT_HMAC_KEY = KEY
    assert "unsigned after heads were signed" in verify().verification.first_problem


def test_the_command_exits_1_naming_the_first_broken_link(trail):
    drop_triggers("reconciliation_mismatch")
    sql("UPDATE reconciliation_mismatch SET actual_qty = 8 WHERE symbol = 'MSFT'")
    row = trail["mismatches"][0].pk

    with pytest.raises(CommandError) as raised:
        call_command("verify_audit", stdout=io.StringIO())

    assert raised.value.returncode == 1
    assert str(raised.value) == (
        f"audit trail BROKEN: 1 problem(s); first: mismatches row {row}: content does not match"
        " its hash: changed after it was written"
    )


def test_the_command_prints_json_in_both_cases(trail):
    out = io.StringIO()
    call_command("verify_audit", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["ok"] is True and report["problems"] == 0 and report["first_problem"] is None
    assert report["chains"]["order_events"]["rows"] == 6

    drop_triggers("orders_orderevent")
    sql("DELETE FROM orders_orderevent WHERE id = %s", [event_ids()[0]])
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("verify_audit", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["ok"] is False and "rows before it are missing" in report["first_problem"]


def test_the_last_verification_shows_on_the_admin_index_and_the_run_page(trail, admin_client):
    verify()
    index = admin_client.get("/admin/").content.decode()
    assert "Audit trail integrity" in index and "Intact" in index
    run_page = admin_client.get(
        f"/admin/reconciliation/reconciliationrun/{trail['run'].pk}/change/"
    )
    assert "Audit trail integrity" in run_page.content.decode()

    drop_triggers("orders_orderevent")
    sql("UPDATE orders_orderevent SET actor = 'x' WHERE id = %s", [event_ids()[0]])
    verify()
    index = admin_client.get("/admin/").content.decode()
    assert ">Broken<" in index and "content does not match its hash" in index


def test_a_negative_process_count_is_one_clear_line(trail):
    with pytest.raises(CommandError, match="--processes must be 0"):
        call_command("verify_audit", "--processes", "-1", stdout=io.StringIO())
