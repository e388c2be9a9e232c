"""`orders.services.events`: the one writer of ``OrderEvent`` and ``OrderExecution`` rows. Every
event is redacted (never a credential), made safe for its columns, and appended at the end of
its hash chain; nothing is saved any other way."""

from decimal import Decimal

import pytest

from audit.services import audit_verify
from brokerops.redaction import REDACTED
from orders.models import OrderEvent, OrderExecution
from orders.services.events import (
    order_event_build,
    order_event_record,
    order_events_append,
    order_executions_append,
)
from tests import factories

pytestmark = pytest.mark.django_db
Kind = OrderEvent.Kind


@pytest.fixture
def keys(settings):
    settings.ALPACA_API_KEY = "PKEYID123"
    settings.ALPACA_SECRET_KEY = "s3cr3t-value"


def test_a_built_event_never_holds_a_credential(keys):
    attempt = factories.order_attempt()

    event = order_event_build(
        attempt=attempt,
        kind=Kind.ERROR,
        message="401 for key PKEYID123 with secret s3cr3t-value",
        payload={"headers": {"APCA-API-KEY-ID": "PKEYID123"}, "echo": ["s3cr3t-value", 1]},
        actor="order-cycle",
    )

    assert event.pk is None  # built, not stored
    assert "PKEYID123" not in event.message and "s3cr3t-value" not in event.message
    assert event.payload["headers"]["APCA-API-KEY-ID"] == REDACTED
    assert "s3cr3t-value" not in str(event.payload) and event.payload["echo"][1] == 1


def test_outside_text_is_made_safe_for_the_columns():
    attempt = factories.order_attempt()

    (event,) = order_events_append(
        [
            order_event_build(
                attempt=attempt,
                kind=Kind.RESPONSE,
                message="fi\x00lled",
                payload={"sym\x00bol": "MS\x00FT"},
                actor="a" * 200,
            )
        ]
    )

    stored = OrderEvent.objects.get(pk=event.pk)
    assert "\x00" not in stored.message and stored.message.startswith("fi")
    assert "\x00" not in str(stored.payload)
    assert stored.actor == "a" * 150


def test_the_defaults_are_empty_not_null():
    attempt = factories.order_attempt()
    event = order_event_record(attempt=attempt, kind=Kind.CREATED)
    stored = OrderEvent.objects.get(pk=event.pk)
    assert (stored.message, stored.payload, stored.http_status) == ("", {}, None)
    assert (stored.status_from, stored.status_to, stored.actor) == ("", "", "")


def test_events_are_appended_in_order_each_chained_to_the_one_before():
    attempt = factories.order_attempt()
    earlier = order_event_record(attempt=attempt, kind=Kind.CREATED, status_to="created")

    appended = order_events_append(
        [
            order_event_build(attempt=attempt, kind=Kind.REQUEST_SENT, message="POST"),
            order_event_build(attempt=attempt, kind=Kind.RESPONSE, http_status=200),
        ]
    )

    rows = list(OrderEvent.objects.order_by("id"))
    assert [r.kind for r in rows] == [Kind.CREATED, Kind.REQUEST_SENT, Kind.RESPONSE]
    assert [r.pk for r in rows[1:]] == [e.pk for e in appended]
    assert rows[1].prev_hash == earlier.hash and rows[2].prev_hash == rows[1].hash
    assert len({r.hash for r in rows}) == 3
    assert audit_verify(trigger="command", processes=1).ok


def test_nothing_to_append_writes_nothing():
    assert order_events_append([]) == []
    assert not OrderEvent.objects.exists()


def test_an_event_is_never_saved_another_way():
    event = order_event_build(attempt=factories.order_attempt(), kind=Kind.CREATED)
    with pytest.raises(TypeError, match="append-only"):
        event.save()


def test_executions_are_chained_on_their_own_chain():
    attempt = factories.order_attempt()
    order_event_record(attempt=attempt, kind=Kind.CREATED)

    first, second = order_executions_append(
        [
            OrderExecution(
                execution_id=f"e-{n}", attempt=attempt, event="partial_fill", qty=Decimal(n)
            )
            for n in (1, 2)
        ]
    )

    assert second.prev_hash == first.hash and first.hash
    assert list(OrderExecution.objects.values_list("execution_id", "qty")) == [
        ("e-1", Decimal(1)),
        ("e-2", Decimal(2)),
    ]
    assert audit_verify(trigger="command", processes=1).ok
