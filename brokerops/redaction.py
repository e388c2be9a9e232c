"""Keep credentials out of everything brokerops stores or logs.

Audit payloads (requests, responses, errors) pass through :func:`redact` before they are saved.
"""

from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"
# Matched case-insensitively against keys, after removing '-' and '_'.
_SECRET_KEY_PARTS = ("secret", "password", "token", "authorization", "apikey", "apcaapikeyid")


def _is_secret_key(key: str) -> bool:
    folded = key.lower().replace("-", "").replace("_", "")
    return any(part in folded for part in _SECRET_KEY_PARTS)


def redact(value: Any, *, secrets: tuple[str, ...] = ()) -> Any:
    """Return a JSON-safe copy of ``value`` with credential fields and known secret values masked.

    ``secrets`` are literal values (API key id, secret key) to mask wherever they appear in
    strings, e.g. inside an error message that echoed a header.
    """
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if _is_secret_key(str(k)) else redact(v, secrets=secrets)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, secrets=secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            if secret:
                value = value.replace(secret, REDACTED)
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)
