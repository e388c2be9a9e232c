"""The checks and values every broker parser shares: the shape of a body (an object, a list),
required and optional text, flags, timestamps, and the bounded figures.

Every quantity, price and money figure goes through :func:`bounded_decimal`: finite and less
than ``1e12`` in magnitude. Quantities are also no finer than ``1e-9`` (the signal bound); prices
and money (:func:`broker_price`) come at any precision and are kept exact: a real crypto
position's ``avg_entry_price`` has 16 decimals (docs/design.md section 6). A figure outside its
range fails the read; it is never clipped or rounded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

_ZERO = timedelta(0)
#: ``datetime.fromisoformat``, bound once: the order parsers call it per timestamp.
fromisoformat = datetime.fromisoformat

#: Figures must be strictly smaller than this in magnitude.
MAX_MAGNITUDE = Decimal("1e12")
#: Figures may carry at most this many decimal places (after dropping trailing zeros).
MAX_PLACES = 9
_MAX_SHOWN = 24  # characters of an offending value quoted in a message
DECIMAL_ZERO = Decimal(0)
# Plain decimal text already inside the bounds and already in its final form: at most 12 integer
# digits (so below 1e12), at most 9 decimal places, no trailing zero after the point. Such a
# string is exactly the Decimal it spells; everything else takes the general path.
FINAL_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{0,8}[1-9])?").fullmatch
# Strings seen by the fast path -> their Decimal (immutable, so shared). Broker bodies repeat
# the same figures (quantities, "0") thousands of times; the cache stops growing when full.
DECIMAL_CACHE: dict[str, Decimal] = {}
_DECIMAL_CACHE_MAX = 50_000


class ParseError(ValueError):
    """A broker body that does not have the shape we rely on."""


def require_mapping(data: Any, what: str) -> Mapping[str, Any]:
    if type(data) is dict:  # what JSON gives: no ABC check (a page of 100 rows, 1,000 pages)
        return data
    if not isinstance(data, Mapping):
        raise ParseError(f"{what}: expected an object, got {type(data).__name__}")
    return data


def require_list(data: Any, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise ParseError(f"{what}: expected a list, got {type(data).__name__}")
    return data


def required_str(data: Mapping[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ParseError(f"{what}: missing or invalid {key!r}")
    return value


def optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    return str(value)


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def bounded_decimal(
    value: Any,
    key: str,
    what: str,
    *,
    max_places: int | None = MAX_PLACES,
) -> Decimal:
    """``value`` (a string, int, float or Decimal from a broker body) as an exact ``Decimal``
    within the project's bounds, or :class:`ParseError` naming ``what`` and ``key``.

    In bounds: finite, ``abs(x) < 1e12``, and at most ``max_places`` (9) decimal places once
    trailing zeros are dropped (``"1.500"`` is fine, ``"1e-10"`` is not). ``max_places=None``
    skips the precision check (for derived totals such as qty x price). Floats (JSON numbers)
    are read through ``str()`` so no binary digits leak in. Never rounds, never raises anything
    but ``ParseError``, whatever the decimal context traps (``"1e999999999"`` is refused by
    comparison, before any arithmetic could overflow). Reused by the intent schema's checks.
    """
    if type(value) is str and (max_places is None or max_places >= MAX_PLACES):
        cached = DECIMAL_CACHE.get(value)
        if cached is not None:
            return cached
        if FINAL_DECIMAL(value):  # in bounds and final (the common case): exact as is
            result = Decimal(value) or DECIMAL_ZERO  # "-0" -> 0, as below
            if len(DECIMAL_CACHE) < _DECIMAL_CACHE_MAX:
                DECIMAL_CACHE[value] = result
            return result
    return _bounded_decimal(value, key, what, max_places=max_places)


def _bounded_decimal(value: Any, key: str, what: str, *, max_places: int | None) -> Decimal:
    if value is None or (isinstance(value, str) and not value.strip()):
        if value is None:
            raise ParseError(f"{what}: {key!r} is missing")
        raise ParseError(f"{what}: {key!r} is not a decimal: {_shown(value)!r}")
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ParseError(f"{what}: {key!r} is not a decimal: {_shown(value)}")
    try:
        # Alpaca sends strings; a bare JSON number goes through str() so no float digits leak.
        result = (
            value
            if isinstance(value, Decimal)
            else Decimal(value if isinstance(value, str | int) else str(value))
        )
    except (InvalidOperation, TypeError, ValueError, ArithmeticError):
        raise ParseError(f"{what}: {key!r} is not a decimal: {_shown(value)!r}") from None
    if not result.is_finite():
        raise ParseError(f"{what}: {key!r} is not finite: {_shown(value)!r}")
    # Comparisons and as_tuple() are exact and never trap, unlike normalize()/quantize().
    if result.copy_abs() >= MAX_MAGNITUDE:
        raise ParseError(f"{what}: {key!r} is at least 1e12 in magnitude: {_shown(value)!r}")
    if not result:
        return Decimal(0)
    sign, digits, exponent = result.as_tuple()
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if max_places is not None and exponent + trailing < -max_places:
        raise ParseError(f"{what}: {key!r} is finer than 1e-{max_places}: {_shown(value)!r}")
    if trailing and exponent < 0:
        # Drop trailing zeros below the point (1.500 -> 1.5): same value, no rounding.
        kept = digits[: len(digits) - min(trailing, -exponent)]
        result = Decimal((sign, kept, exponent + min(trailing, -exponent)))
    return result


def broker_price(value: Any, key: str, what: str) -> Decimal:
    """A price or money figure from the broker: exact at any precision, finite, under ``1e12``
    in magnitude (a quantity goes through :func:`bounded_decimal` with its 9-decimal bound)."""
    return bounded_decimal(value, key, what, max_places=None)


def optional_decimal(
    data: Mapping[str, Any], key: str, what: str, *, max_places: int | None = MAX_PLACES
) -> Decimal | None:
    """``data[key]`` through :func:`bounded_decimal`; ``None`` when absent, null or empty."""
    value = data.get(key)
    if value is None or value == "":
        return None
    return bounded_decimal(value, key, what, max_places=max_places)


def flag(data: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def parse_timestamp(value: Any, key: str = "timestamp", what: str = "value") -> datetime | None:
    """RFC 3339 (``Z`` or offset, up to nanoseconds) -> aware UTC datetime (microseconds)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ParseError(f"{what}: {key!r} is not a timestamp")
    try:
        parsed = datetime.fromisoformat(value)  # Python 3.11 takes "Z" and long fractions
    except ValueError:
        parsed = _parse_timestamp_slow(value, key, what)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed if parsed.utcoffset() == _ZERO else parsed.astimezone(UTC)


def _parse_timestamp_slow(value: str, key: str, what: str) -> datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Keep at most 6 fractional digits (Alpaca may send nanoseconds).
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tail = rest[:digits], rest[digits:]
        text = f"{head}.{frac[:6].ljust(6, '0')}{tail}" if frac else head + tail
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ParseError(f"{what}: {key!r} is not a timestamp") from None
