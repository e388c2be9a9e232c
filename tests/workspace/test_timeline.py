"""The timeline page: one order's whole story in time order, each entry linked to its row."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from orders.models import OrderEvent
from reconciliation.diff import ReconciliationErrors
from tests import factories
from tests.workspace.helpers import execution, local_signal, record_mismatch
from workspace.timeline import order_timeline

pytestmark = pytest.mark.django_db

COID = "bo-tl1-entry"


def _story(events: int = 0):
    """An order with its signal, events, a fill, two mismatches (one about several signals,
    one repaired) and a re-sync."""
    signal = local_signal(
        "tl1",
        status="ACTIVE",
        client_order_id=COID,
        created_at=(timezone.now() - timedelta(minutes=5)).isoformat(),
        status_reason="filled at Alpaca",
    )
    attempt = factories.order_attempt(
        client_order_id=COID,
        signal_id="tl1",
        symbol="MSFT",
        qty=Decimal("10"),
        alpaca_order_id="aaaa-1111",
    )
    factories.order_event(attempt=attempt, kind=OrderEvent.Kind.CREATED)
    factories.order_event(
        attempt=attempt,
        kind=OrderEvent.Kind.REQUEST_SENT,
        message="POST /v2/orders",
        payload={"symbol": "MSFT", "qty": "10", "client_order_id": COID},
    )
    factories.order_event(
        attempt=attempt,
        kind=OrderEvent.Kind.RESPONSE,
        http_status=200,
        message="accepted",
        payload={"id": "aaaa-1111", "status": "accepted"},
    )
    for n in range(events):
        factories.order_event(attempt=attempt, kind=OrderEvent.Kind.LOOKUP, message=f"look {n}")
    fill = execution(attempt=attempt, execution_id="ex-1", qty="10", at=timezone.now())
    factories.order_event(
        attempt=attempt,
        kind=OrderEvent.Kind.SIGNAL_TRANSITION,
        status_from="SUBMITTED",
        status_to="ACTIVE",
        message="signal 'tl1': applied",
        actor="order-sync",
    )
    several = record_mismatch(
        kind=ReconciliationErrors.QTY_MISMATCH,
        symbol="MSFT",
        signal_ids=("other-1", "tl1", "other-2"),
        expected_qty=Decimal("30"),
        actual_qty=Decimal("20.5"),
        detail="Alpaca's quantity differs from intent",
    )
    repaired = record_mismatch(
        kind=ReconciliationErrors.ORDER_STATUS_DRIFT,
        symbol="MSFT",
        client_order_id=COID,
        outcome=("attempt_status_updated", "filled at Alpaca"),
    )
    factories.order_event(
        attempt=attempt,
        kind=OrderEvent.Kind.RESYNC_REQUESTED,
        message="re-sync requested in the admin",
        actor="olivia",
    )
    return {
        "signal": signal,
        "attempt": attempt,
        "fill": fill,
        "several": several,
        "repaired": repaired,
    }


@pytest.fixture
def compliance_client(client):
    client.force_login(factories.staff_user(group="compliance"))
    return client


def _url(client_order_id: str = COID) -> str:
    return reverse("order_timeline", kwargs={"client_order_id": client_order_id})


def test_the_timeline_tells_the_whole_story_in_time_order(compliance_client):
    story = _story()
    page = compliance_client.get(_url())
    assert page.status_code == 200
    html = page.content.decode()

    stamps = [parse_datetime(s) for s in re.findall(r'data-at="([^"]+)"', html)]
    assert len(stamps) >= 10
    assert stamps == sorted(stamps)
    titles = re.findall(r'<td class="title">([^<]*)</td>', html)
    order = [
        "Signal created",
        "Order attempt recorded",
        "Request sent",
        "Broker response (HTTP 200)",
        "Fill: 10 @ 187.25",
        "Signal moved: submitted to the broker \u2192 active",
        "Quantity mismatch (warning) found by run",
        "Order status drift (warning) found by run",
        "Repair outcome: Order attempt updated to broker status",
        "Re-sync requested by olivia",
    ]
    positions = [next(i for i, t in enumerate(titles) if t.startswith(o)) for o in order]
    assert positions == sorted(positions), titles

    attempt, several, repaired = story["attempt"], story["several"], story["repaired"]
    for url in (
        reverse("admin:orders_orderattempt_change", args=[attempt.pk]),
        reverse("admin:reconciliation_mismatch_change", args=[several.pk]),
        reverse("admin:reconciliation_mismatch_change", args=[repaired.pk]),
        reverse("admin:reconciliation_reconciliationrun_change", args=[repaired.run_id]),
        reverse("admin:intent_localsignal_change", args=[story["signal"].pk]),
        reverse("admin:orders_orderexecution_change", args=[story["fill"].pk]),
    ):
        assert f'href="{url}"' in html, url
    for event in attempt.events.all():
        assert reverse("admin:orders_orderevent_change", args=[event.pk]) in html
    # The signal's current state, the repair's final outcome, who asked for the re-sync.
    assert "now <strong>active (filled, position open)</strong> (filled at Alpaca)" in html
    assert "outcome: Order attempt updated to broker status" in html
    # Payloads pretty-printed and folded.
    assert '<details class="json-folded"><summary>Show the details (3 fields)' in html
    assert "&quot;symbol&quot;: &quot;MSFT&quot;" in html


def test_every_linked_row_opens_for_compliance(compliance_client):
    _story()
    html = compliance_client.get(_url()).content.decode()
    links = set(re.findall(r'<td class="links">(.*?)</td>', html, re.S))
    hrefs = {h for cell in links for h in re.findall(r'href="([^"]+)"', cell)}
    assert len(hrefs) >= 8
    for href in hrefs:
        assert compliance_client.get(href).status_code == 200, href


@pytest.mark.parametrize("group", ["compliance", "operations"])
def test_the_staff_groups_may_read_it(client, group):
    _story()
    client.force_login(factories.staff_user(group=group))
    assert client.get(_url()).status_code == 200


def test_a_superuser_may_read_it(client):
    _story()
    client.force_login(User.objects.create_superuser("root", password="pw-for-tests-1"))
    assert client.get(_url()).status_code == 200


def test_staff_without_a_group_may_not(client):
    _story()
    client.force_login(User.objects.create_user("nobody", password="pw", is_staff=True))
    assert client.get(_url()).status_code == 403


def test_anonymous_visitors_are_sent_to_the_login(client):
    _story()
    response = client.get(_url())
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_an_unknown_order_is_404(compliance_client):
    _story()
    assert compliance_client.get(_url("bo-nothing-entry")).status_code == 404


def test_an_id_no_database_can_hold_is_404_not_a_server_error(compliance_client):
    """PostgreSQL text cannot hold NUL: no client_order_id contains one, so nothing is looked up."""
    assert compliance_client.get("/admin/timeline/bo-%00-entry/").status_code == 404


def test_a_mismatch_only_order_has_a_timeline(compliance_client):
    """An order the broker holds that we never recorded: its mismatch is its story."""
    record_mismatch(
        kind=ReconciliationErrors.UNKNOWN_ORDER, symbol="TSLA", client_order_id="foreign-1"
    )
    page = compliance_client.get(_url("foreign-1"))
    assert page.status_code == 200
    assert b"Unknown order" in page.content


def test_the_query_count_does_not_grow_with_the_events(compliance_client):
    _story(events=0)
    with CaptureQueriesContext(connection) as few:
        assert compliance_client.get(_url()).status_code == 200
    attempt = order_timeline(client_order_id=COID).attempt
    for n in range(60):
        factories.order_event(attempt=attempt, kind=OrderEvent.Kind.LOOKUP, message=f"n{n}")
    for n in range(5):
        record_mismatch(
            kind=ReconciliationErrors.QTY_MISMATCH, symbol="MSFT", signal_id=f"x{n},tl1"
        )
    with CaptureQueriesContext(connection) as many:
        page = compliance_client.get(_url())
    assert page.content.count(b"n59") == 1
    assert len(many) == len(few)
    # 12 for the page; its access record (docs/design.md section 19) takes up to 5 more: the
    # transaction's two ends, the chain's lock (PostgreSQL), its head and the insert.
    assert len(many) <= 12 + 5


def test_attempt_mismatch_and_signal_pages_link_to_the_timeline(compliance_client):
    story = _story()
    timeline = _url()
    pages = [
        reverse("admin:orders_orderattempt_change", args=[story["attempt"].pk]),
        reverse("admin:orders_orderattempt_changelist"),
        reverse("admin:reconciliation_mismatch_change", args=[story["repaired"].pk]),
        reverse("admin:reconciliation_mismatch_changelist"),
        reverse("admin:reconciliation_mismatch_change", args=[story["several"].pk]),
        reverse("admin:intent_localsignal_change", args=[story["signal"].pk]),
        reverse("admin:intent_localsignal_changelist"),
    ]
    for url in pages:
        html = compliance_client.get(url).content.decode()
        assert f'href="{timeline}"' in html, url


class _UnreachableStore:
    def get(self, signal_id):
        from brokerops.intent.store import SignalStoreUnavailable

        raise SignalStoreUnavailable("firestore unreachable")


def test_an_unreadable_signal_store_leaves_the_rest_of_the_story(
    compliance_client, settings, monkeypatch
):
    _story()
    settings.SIGNAL_STORE = "firestore"
    monkeypatch.setattr("workspace.timeline.get_signal_store", _UnreachableStore)
    page = compliance_client.get(_url())
    assert page.status_code == 200
    html = page.content.decode()
    assert "the signal store could not be read (firestore unreachable)" in html
    assert "Request sent" in html and "Re-sync requested by olivia" in html


@pytest.mark.parametrize("signal_id", ["needs hashing #1", "x" * 130, "sha256:lookalike"])
def test_a_signal_whose_id_is_hashed_and_has_no_attempt_links_to_a_timeline_that_serves_it(
    compliance_client, signal_id
):
    """Its client_order_id carries a digest, not the id: the link names the signal, and the
    page serves it (a link the page answers 404 would be a dead end)."""
    row = local_signal(signal_id, status="PENDING", symbol="NVDA")
    record_mismatch(kind=ReconciliationErrors.ORPHAN_POSITION, symbol="NVDA", signal_id=signal_id)
    for page in (
        reverse("admin:intent_localsignal_change", args=[row.pk]),
        reverse("admin:intent_localsignal_changelist"),
    ):
        html = compliance_client.get(page).content.decode()
        (link,) = set(re.findall(r'class="timeline-link" href="([^"]+)"', html))
        timeline = compliance_client.get(link.replace("&amp;", "&"))
        assert timeline.status_code == 200, page
        assert signal_id.encode() in timeline.content
        assert b"Orphan position" in timeline.content


def test_a_hashed_id_names_only_its_own_signal(compliance_client):
    """The signal named in the link must be the one the id was made from."""
    from orders.client_order_id import client_order_id_for

    local_signal("other signal", status="PENDING")
    hashed = client_order_id_for(signal_id="needs hashing #2", prefix="bo")
    response = compliance_client.get(_url(hashed), {"signal": "other signal"})
    assert response.status_code == 404


def test_a_mismatch_about_a_hashed_signal_links_to_a_timeline_that_serves_it(compliance_client):
    mismatch = record_mismatch(
        kind=ReconciliationErrors.ORPHAN_POSITION, symbol="NVDA", signal_id="needs hashing #3"
    )
    for page in (
        reverse("admin:reconciliation_mismatch_change", args=[mismatch.pk]),
        reverse("admin:reconciliation_mismatch_changelist"),
    ):
        html = compliance_client.get(page).content.decode()
        for link in set(re.findall(r'class="timeline-link" href="([^"]+)"', html)):
            assert compliance_client.get(link.replace("&amp;", "&")).status_code == 200, page
