"""An export never blocks writers (docs/design.md section 7): a client that stops reading a CSV
download mid-way holds no lock a writer waits for, on SQLite (whose transactions here take the
write lock as they begin) as on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.urls import reverse

from orders.models import OrderAttempt
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


def write_in_another_connection() -> str:
    """Create an attempt from another thread (its own connection), waiting at most 2 s for a
    lock; returns "" or the error."""
    outcome: list[str] = []

    def write() -> None:
        try:
            connection.ensure_connection()
            if connection.vendor == "sqlite":
                connection.connection.execute("PRAGMA busy_timeout = 2000")
            else:
                with connection.cursor() as cursor:
                    cursor.execute("SET lock_timeout = '2s'")
            factories.order_attempt(signal_id="written-meanwhile")
            outcome.append("")
        except Exception as exc:  # noqa: BLE001 - the test reports it
            outcome.append(f"{type(exc).__name__}: {exc}")
        finally:
            connections.close_all()

    writer = threading.Thread(target=write)
    writer.start()
    writer.join()
    return outcome[0]


def test_a_stalled_download_does_not_block_a_writer(client):
    for _ in range(30):
        factories.order_attempt()
    client.force_login(factories.staff_user(group="compliance"))
    response = client.get(reverse("admin:orders_orderattempt_export"))
    stream = iter(response.streaming_content)
    received = next(stream) + next(stream)  # the header and the first rows, then nothing

    assert b"Client order id" in received
    assert write_in_another_connection() == ""
    assert OrderAttempt.objects.filter(signal_id="written-meanwhile").exists()
    rest = b"".join(stream)  # the client reads on: the export is what it was when it began
    assert b"written-meanwhile" not in received + rest
    assert (received + rest).count(b"\n") == 31
