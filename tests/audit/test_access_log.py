"""The access log's table (docs/design.md section 19): one writer, hash-chained, append-only at
the database, covered by ``verify_audit``."""

from types import SimpleNamespace

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory

from audit import triggers
from audit.access import access_record, access_record_build, access_records_append
from audit.chain import CHAINS_BY_NAME, row_hash
from audit.models import AccessRecord
from audit.services import audit_verify, chain_heads_record

pytestmark = pytest.mark.django_db


class _User:
    is_authenticated = True

    def get_username(self) -> str:
        return "carol"


def _request(path: str = "/admin/timeline/bo-sig1-entry/", query: str = "q=abc&status=filled"):
    request = RequestFactory().get(f"{path}?{query}")
    request.user = _User()
    return request


def test_a_record_names_who_what_which_and_the_query():
    record = access_record(request=_request(), what="timeline", object_id="bo-sig1-entry")
    stored = AccessRecord.objects.get(pk=record.pk)
    assert (stored.username, stored.what, stored.object_id) == (
        "carol",
        "timeline",
        "bo-sig1-entry",
    )
    assert stored.path == "/admin/timeline/bo-sig1-entry/"
    assert stored.query == "q=abc&status=filled"
    assert stored.created_at is not None


def test_records_are_chained_in_order():
    first = access_record(request=_request(), what="attempt", object_id="1")
    second = access_record(request=_request(), what="export", object_id="orders.orderattempt")
    assert first.prev_hash == "" and second.prev_hash == first.hash
    spec = CHAINS_BY_NAME["access_records"]
    stored = AccessRecord.objects.get(pk=second.pk)
    values = {name: getattr(stored, name) for name in spec.fields}
    assert stored.hash == row_hash(first.hash, values)


def test_an_unknown_kind_is_refused_and_nothing_written():
    with pytest.raises(ValueError, match="not a valid"):
        access_record_build(user="carol", what="peeked")
    assert not AccessRecord.objects.exists()


def test_a_record_cannot_be_saved_directly():
    with pytest.raises(TypeError, match="append-only"):
        AccessRecord(username="x", what="timeline").save()


def _raw(sql: str) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)


@pytest.mark.parametrize(
    "sql", ["UPDATE audit_accessrecord SET username = 'mallory'", "DELETE FROM audit_accessrecord"]
)
def test_the_database_refuses_changes_and_deletes(sql):
    access_record(request=_request(), what="run", object_id="7")
    with pytest.raises(DatabaseError, match="append-only"):
        _raw(sql)
    assert AccessRecord.objects.get().username == "carol"


def test_verify_audit_covers_the_access_log():
    access_records_append(
        [access_record_build(user="carol", what="signal", object_id=f"sig{n}") for n in range(3)]
    )
    chain_heads_record(recorded_by="test")
    result = audit_verify(trigger="command", processes=1)
    assert result.ok
    assert result.reports["access_records"].rows == 3
    assert result.reports["access_records"].heads_checked == 1


def test_verify_audit_names_a_changed_access_record():
    records = access_records_append(
        [access_record_build(user="carol", what="signal", object_id=f"sig{n}") for n in range(3)]
    )
    _tamper(records[1].pk)
    result = audit_verify(trigger="command", processes=1)
    assert not result.ok
    assert f"access_records row {records[1].pk}" in result.verification.first_problem


def _tamper(pk: int) -> None:
    """Change a row behind the triggers' back, as an intruder with the table owner's rights."""
    triggers.remove(SimpleNamespace(connection=connection), ["audit_accessrecord"])
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_accessrecord SET username = 'mallory' WHERE id = %s", [pk])
