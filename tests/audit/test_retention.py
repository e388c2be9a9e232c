"""Retention (docs/design.md section 19): every audit table refuses DELETE at the database and no
deletion of another row cascades into one; ``AUDIT_RETENTION_YEARS`` is six unless set longer."""

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models

from audit.chain import CHAINS
from audit.models import AccessRecord, AuditVerification, ChainHead

pytestmark = pytest.mark.django_db

AUDIT_MODELS = [apps.get_model(s.app_label, s.model_name) for s in CHAINS] + [
    ChainHead,
    AuditVerification,
]


def test_every_chain_and_the_access_log_are_audit_tables():
    assert AccessRecord in AUDIT_MODELS
    assert len(AUDIT_MODELS) == len(CHAINS) + 2


@pytest.mark.parametrize("model", AUDIT_MODELS, ids=lambda m: m.__name__)
def test_every_audit_table_has_the_trigger_refusing_delete(model):
    """(The triggers' behaviour is tested in test_append_only; here: none is missing.)"""
    table = model._meta.db_table
    if connection.vendor == "postgresql":
        sql = "SELECT tgname FROM pg_trigger WHERE tgname = %s"  # BEFORE UPDATE OR DELETE
        name = f"{table}_no_update"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name = %s"
        name = f"{table}_no_delete"
    with connection.cursor() as cursor:
        cursor.execute(sql, [name])
        assert cursor.fetchone() == (name,), f"{table} has no trigger refusing DELETE"


@pytest.mark.parametrize("model", AUDIT_MODELS, ids=lambda m: m.__name__)
def test_no_deletion_cascades_into_an_audit_table(model):
    for field in model._meta.concrete_fields:
        if isinstance(field, models.ForeignKey):
            assert field.remote_field.on_delete is models.PROTECT, (
                f"{model.__name__}.{field.name}: deleting its {field.related_model.__name__}"
                " would delete audit rows"
            )


def _years(monkeypatch, value: str | None) -> int:
    from brokerops import settings as module

    if value is None:
        monkeypatch.delenv("AUDIT_RETENTION_YEARS", raising=False)
    else:
        monkeypatch.setenv("AUDIT_RETENTION_YEARS", value)
    return module._env_number("AUDIT_RETENTION_YEARS", 6, low=6, high=100)


def test_retention_is_six_years_unless_set_longer(monkeypatch, settings):
    assert settings.AUDIT_RETENTION_YEARS == 6
    assert _years(monkeypatch, None) == 6
    assert _years(monkeypatch, "10") == 10
    with pytest.raises(ImproperlyConfigured, match="AUDIT_RETENTION_YEARS must be"):
        _years(monkeypatch, "2")
