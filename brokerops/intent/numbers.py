"""The numbers of a signal document: quantities, prices and the timeout, checked against their
bounds (the rules are listed in `brokerops.intent.schema`'s docstring; docs/design.md section 3).

Each check appends a reason naming the field instead of raising, and none of them raises or takes
long, whatever the input: integer comparisons and exact `Decimal` operations in a local context
with every trap off.
"""

from __future__ import annotations

import math
import re
from decimal import Context, Decimal

#: Quantities, notionals and prices must be below this in magnitude (docs/design.md section 3).
NUMBER_MAX = Decimal(10) ** 12
#: ... and no finer than this: nothing past the ninth decimal place (the audit columns' scale).
NUMBER_RESOLUTION = Decimal("1e-9")
#: Longest numeric string considered (a longer one is not a number a producer means).
NUMBER_MAX_CHARS = 100
# ASCII decimal notation only (`Decimal` also takes "1_000", Arabic-Indic digits and NaN payloads).
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE_RE = re.compile(r"[+-]?(?:s?nan[0-9]*|inf|infinity)", re.IGNORECASE)
# Exact work on bounded numbers: with |x| < 1e12 quantizing to 1e-9 needs at most 21 digits.
_EXACT = Context(prec=40, traps=[])


def type_name(value: object) -> str:
    """The name of a value's type, for a reason (``must be a number, not str``)."""
    return type(value).__name__


def shown(value: object) -> str:
    """A short rendering of a value for a reason (never the whole of a huge input)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


#: Numeric strings already accepted by `decimal_field` -> their Decimal (immutable, so shared).
#: Signal documents repeat the same few quantities; the cache stops growing when full.
_NUMBER_CACHE: dict[str, Decimal] = {}
_NUMBER_CACHE_MAX = 20_000


def decimal_field(name: str, value: object, reasons: list[str]) -> Decimal | None:
    """A bounded, positive Decimal from int/float/Decimal/numeric str (the rules: the docstring of
    `brokerops.intent.schema`); appends one reason naming the field otherwise."""
    if value is None:
        return None
    if type(value) is str:
        cached = _NUMBER_CACHE.get(value)
        if cached is not None:
            return cached
        number = _checked_decimal(name, value, reasons)
        if number is not None and len(_NUMBER_CACHE) < _NUMBER_CACHE_MAX:
            _NUMBER_CACHE[value] = number
        return number
    return _checked_decimal(name, value, reasons)


def _checked_decimal(name: str, value: object, reasons: list[str]) -> Decimal | None:
    if isinstance(value, bool):
        reasons.append(f"{name} must be a number, not a boolean")
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        if value <= 0:
            reasons.append(f"{name} must be positive, not {shown(value)}")
            return None
        if value >= NUMBER_MAX:  # before Decimal(): a 5,000-digit int stays an int compare
            reasons.append(f"{name} must be less than 1e12, not {shown(value)}")
            return None
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            reasons.append(f"{name} must be finite, not {value!r}")
            return None
        number = Decimal(str(value))
    elif isinstance(value, str):
        number = _decimal_from_text(name, value, reasons)
        if number is None:
            return None
    else:
        reasons.append(f"{name} must be a number, not {type_name(value)}")
        return None
    if not number.is_finite():
        reasons.append(f"{name} must be finite, not {shown(value)}")
        return None
    if number <= 0:  # an exact comparison: no context, no trap
        reasons.append(f"{name} must be positive, not {shown(number)}")
        return None
    if number.adjusted() >= 12:  # the exponent of the leading digit: exact, whatever the size
        reasons.append(f"{name} must be less than 1e12, not {shown(number)}")
        return None
    if number.quantize(NUMBER_RESOLUTION, context=_EXACT) != number:
        reasons.append(f"{name} is finer than 1e-9: {shown(number)}")
        return None
    return number


def _decimal_from_text(name: str, value: str, reasons: list[str]) -> Decimal | None:
    """The Decimal a numeric string writes (ASCII decimal notation, not too long), unchecked
    against the bounds; appends one reason otherwise."""
    text = value.strip()
    if len(text) > NUMBER_MAX_CHARS:
        reasons.append(
            f"{name} is too long to be a number ({len(text)} characters, "
            f"at most {NUMBER_MAX_CHARS}): {shown(text)}"
        )
        return None
    if _NOT_FINITE_RE.fullmatch(text):
        reasons.append(f"{name} must be finite, not {shown(value)}")
        return None
    if not _NUMBER_RE.fullmatch(text):
        reasons.append(f"{name} is not numeric: {shown(value)}")
        return None
    try:
        return Decimal(text)
    except ArithmeticError:  # an exponent beyond what Decimal represents
        reasons.append(f"{name} is out of range: {shown(value)}")
        return None


def timeout_field(value: object, reasons: list[str]) -> int | None:
    """`timeout_seconds`: a whole, positive number of seconds below 1e12 (int, integral float or
    ASCII digits); appends one reason otherwise."""
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():  # "²".isdigit() is true too
            if len(text) > 12:
                reasons.append(f"timeout_seconds must be less than 1e12, not {shown(value)}")
                return None
            number = int(text)
    if number is None:
        reasons.append(f"timeout_seconds must be a whole number of seconds, not {shown(value)}")
        return None
    if number <= 0:
        reasons.append(f"timeout_seconds must be positive, not {shown(number)}")
        return None
    if number >= NUMBER_MAX:
        reasons.append(f"timeout_seconds must be less than 1e12, not {shown(number)}")
        return None
    return number
