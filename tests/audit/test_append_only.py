"""Audit rows are append-only at the database: raw SQL cannot change or delete them (docs/design.md
section 12). Runs on PostgreSQL (CI's main run) and on SQLite (CI's second run, and a
newcomer's default)."""

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditVerification, ChainHead
from audit.services import audit_verify, chain_heads_record
from orders.models import OrderEvent
from reconciliation.models import Mismatch, RunEvent
from tests.audit._trail import write_trail

pytestmark = pytest.mark.django_db

APPEND_ONLY = [OrderEvent, Mismatch, RunEvent, ChainHead, AuditVerification]


@pytest.fixture
def trail():
    written = write_trail()
    chain_heads_record(recorded_by="test")
    audit_verify(trigger="command", processes=1)
    return written


def _raw(sql: str) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)


@pytest.mark.parametrize("model", APPEND_ONLY, ids=lambda m: m.__name__)
def test_raw_sql_update_is_refused(trail, model):
    table = model._meta.db_table
    assert model.objects.exists()
    with pytest.raises(DatabaseError, match="append-only"):
        _raw(f"UPDATE {table} SET id = id")  # noqa: S608 - table names from the models


@pytest.mark.parametrize("model", APPEND_ONLY, ids=lambda m: m.__name__)
def test_raw_sql_delete_is_refused(trail, model):
    table = model._meta.db_table
    before = model.objects.count()
    with pytest.raises(DatabaseError, match="append-only"):
        _raw(f"DELETE FROM {table}")  # noqa: S608 - table names from the models
    assert model.objects.count() == before


def test_orm_update_and_delete_are_refused_too(trail):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        OrderEvent.objects.update(message="rewritten")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Mismatch.objects.filter(symbol="MSFT").delete()
    assert not OrderEvent.objects.filter(message="rewritten").exists()


def test_chained_rows_cannot_be_saved_or_bulk_created_around_the_writer(trail):
    event = OrderEvent.objects.first()
    with pytest.raises(TypeError, match="chain_append"):
        event.save()
    with pytest.raises(TypeError, match="chain_append"):
        OrderEvent.objects.bulk_create([OrderEvent(attempt=trail["attempt"], kind="created")])
    with pytest.raises(TypeError, match="chain_append"):
        OrderEvent.objects.create(attempt=trail["attempt"], kind="created")
