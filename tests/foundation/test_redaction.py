"""Credentials never reach stored payloads."""

from decimal import Decimal

from brokerops.redaction import REDACTED, redact


def test_credential_fields_are_masked_at_any_depth():
    payload = {
        "headers": {"APCA-API-KEY-ID": "AKXYZ", "APCA-API-SECRET-KEY": "shh", "Accept": "json"},
        "orders": [{"client_order_id": "bo-1", "api_key": "AKXYZ", "Authorization": "Bearer t"}],
    }
    assert redact(payload) == {
        "headers": {"APCA-API-KEY-ID": REDACTED, "APCA-API-SECRET-KEY": REDACTED, "Accept": "json"},
        "orders": [{"client_order_id": "bo-1", "api_key": REDACTED, "Authorization": REDACTED}],
    }


def test_known_secret_values_are_masked_inside_text():
    got = redact({"message": "auth failed for key AKXYZ"}, secrets=("AKXYZ", ""))
    assert got == {"message": f"auth failed for key {REDACTED}"}


def test_values_become_json_safe():
    assert redact({"qty": Decimal("1.50"), "ok": True, "n": 3, "none": None}) == {
        "qty": "1.50",
        "ok": True,
        "n": 3,
        "none": None,
    }
