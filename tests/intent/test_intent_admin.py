"""The local store's documents in the admin: visible and searchable, never editable."""

from django.urls import reverse

from brokerops.intent.local import LocalSignalStore
from brokerops.intent.models import LocalSignal


def load():
    LocalSignalStore().put_documents(
        [
            ("sig-aapl", {"symbol": "AAPL", "side": "buy", "qty": 1, "order_type": "market",
                          "status": "ACTIVE"}),
            ("sig-btc", {"symbol": "BTC/USD", "side": "sell", "notional": 10,
                         "order_type": "market", "status": "PENDING"}),
            ("sig-bad", {"symbol": "MSFT", "status": "WHAT"}),
        ]
    )  # fmt: skip


def test_changelist_searches_by_id_and_symbol_and_filters_by_status(admin_client):
    load()
    url = reverse("admin:intent_localsignal_changelist")

    everything = admin_client.get(url)
    assert everything.status_code == 200
    assert b"sig-aapl" in everything.content and b"sig-bad" in everything.content

    by_symbol = admin_client.get(url, {"q": "btc"})
    assert b"sig-btc" in by_symbol.content and b"sig-aapl" not in by_symbol.content

    by_id = admin_client.get(url, {"q": "sig-aapl"})
    assert b"sig-aapl" in by_id.content and b"sig-btc" not in by_id.content

    by_status = admin_client.get(url, {"status": "PENDING"})
    assert b"sig-btc" in by_status.content and b"sig-aapl" not in by_status.content


def test_documents_are_read_only(admin_client):
    load()
    bad = LocalSignal.objects.get(document_id="sig-bad")

    detail = admin_client.get(reverse("admin:intent_localsignal_change", args=[bad.pk]))
    assert detail.status_code == 200
    assert b"unknown status" in detail.content
    assert b'name="_save"' not in detail.content

    assert admin_client.get(reverse("admin:intent_localsignal_add")).status_code == 403
    delete_url = reverse("admin:intent_localsignal_delete", args=[bad.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert LocalSignal.objects.filter(document_id="sig-bad").exists()


def test_ids_that_would_not_show_are_quoted(admin_client):
    LocalSignalStore().put_documents(
        [(" ", {"status": "ACTIVE"}), ("a b", {"status": "ACTIVE"}), ("a\x00b", {})]
    )
    shown = {str(row) for row in LocalSignal.objects.all()}
    assert shown == {"' '", "a b", "'a\\x00b'"}

    page = admin_client.get(reverse("admin:intent_localsignal_changelist"))
    assert page.status_code == 200
    assert b"&#x27; &#x27;</a>" in page.content
