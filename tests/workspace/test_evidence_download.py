"""The evidence pack from the admin (docs/design.md section 19): behind
``audit.download_evidence``, recorded on the access log; an unknown or another account's order is
a 404 and a range over the limit a 400, neither recorded."""

import zipfile

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from audit.models import AccessRecord
from evidence.check import evidence_check
from tests import factories
from workspace.models import AccountGrant

pytestmark = pytest.mark.django_db
KEY = "evidence-admin-test-key"


@pytest.fixture(autouse=True)
def key(settings):
    settings.AUDIT_HMAC_KEY = KEY


@pytest.fixture
def orders():
    for coid, account in (("bo-sigD-entry", "default"), ("bo-sigC-entry", "client")):
        factories.order_event(
            attempt=factories.order_attempt(client_order_id=coid, account=account)
        )


def test_compliance_downloads_a_pack_that_checks_and_is_recorded(client, orders, tmp_path):
    client.force_login(factories.staff_user(group="compliance", username="cora"))
    assert client.get(reverse("evidence_pack")).status_code == 200  # the form
    response = client.get(reverse("evidence_pack"), {"order": "bo-sigD-entry"})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="evidence-bo-sigD')
    path = tmp_path / "pack.zip"
    path.write_bytes(b"".join(response.streaming_content))
    assert evidence_check(str(path), key=KEY) == []
    with zipfile.ZipFile(path) as archive:
        assert b"bo-sigD-entry" in archive.read("attempts.csv")
    record = AccessRecord.objects.get(what="evidence")
    assert (record.username, record.object_id, record.query) == (
        "cora",
        "bo-sigD-entry",
        "order=bo-sigD-entry",
    )


@pytest.mark.parametrize("order", ["bo-none", "bo-sigC-entry"])
def test_an_unknown_or_unseen_order_is_a_404_and_not_recorded(client, orders, order):
    user = factories.staff_user(group="compliance")
    AccountGrant.objects.create(account="default", user=user, created_by="root")
    client.force_login(user)
    assert client.get(reverse("evidence_pack"), {"order": order}).status_code == 404
    assert not AccessRecord.objects.filter(what="evidence").exists()


def test_a_range_over_the_limit_is_a_400_naming_it(client):
    client.force_login(factories.staff_user(group="compliance"))
    page = client.get(reverse("evidence_pack"), {"from": "2016-01-01", "to": "2026-01-01"})
    assert page.status_code == 400
    assert "one pack covers at most 31 days" in page.content.decode()
    assert not AccessRecord.objects.exists()


def test_view_permissions_alone_download_nothing(client, orders):
    viewer = User.objects.create_user("viewer", password="pw-for-tests-1", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(viewer)
    assert client.get(reverse("evidence_pack"), {"order": "bo-sigD-entry"}).status_code == 403
    assert b"evidence-link" not in client.get(reverse("admin:index")).content
    assert not AccessRecord.objects.exists()
