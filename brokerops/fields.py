"""Field shapes shared by the audit models, so money and quantities are stored one way."""

from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models

from brokerops.accounts import NAME_MAX, rows_owner_name

# Quantities keep the signal bound: at most 9 decimals (Alpaca's crypto quantities), under 1e12.
QTY_DIGITS = {"max_digits": 28, "decimal_places": 9}
CLIENT_ORDER_ID_MAX = 128  # Alpaca's limit
# Firestore document ids are up to 1,500 bytes of UTF-8, so at most 1,500 characters: audit
# columns holding a signal id take any id whole (no hashing, no truncation; searchable as is).
SIGNAL_ID_MAX = 1500


def plain_decimal_text(value: Decimal) -> str:
    """``value`` exactly, as people write it: no exponent, no trailing zeros after the point
    (``1E+2`` -> ``100``, ``1.500`` -> ``1.5``, ``-0.0`` -> ``0``). Never rounds (unlike
    ``normalize()``, which keeps 28 significant digits): the one form of a decimal in the audit
    chain, the price columns, the admin and the CSV export."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "0", "") else text


class ExactDecimalField(models.Field):
    """A decimal kept exactly at any precision: broker prices and money (docs/design.md
    section 6), which Alpaca sends with as many digits as it computed (a crypto position's
    average entry price has 16 decimals, a cost basis 28).

    Stored as its plain text (:func:`plain_decimal_text`), because no decimal column keeps
    such a figure on every database the project runs on: SQLite reads decimal columns back
    through a float (15 significant digits) and a ``numeric(p, s)`` column rounds to ``s``
    places. Equality lookups compare the canonical text, so they are exact; there is no numeric
    ordering in SQL (nothing sorts or sums these columns in the database)."""

    description = "Exact decimal (any precision, stored as text)"
    empty_strings_allowed = False

    def get_internal_type(self) -> str:
        return "TextField"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Decimal | None:
        return None if value is None else Decimal(value)

    def to_python(self, value: Any) -> Decimal | None:
        if value is None or value == "":
            return None
        if isinstance(value, Decimal):
            number = value
        else:
            try:  # a float through str(): its shortest repr, not its binary digits
                number = Decimal(str(value) if isinstance(value, float) else value)
            except (InvalidOperation, TypeError, ValueError):
                raise ValidationError(f"{value!r} is not a decimal", code="invalid") from None
        if not number.is_finite():
            raise ValidationError(f"{value!r} is not a finite decimal", code="invalid")
        return number

    def get_prep_value(self, value: Any) -> str | None:
        value = super().get_prep_value(value)
        number = self.to_python(value)
        return None if number is None else plain_decimal_text(number)

    def formfield(self, **kwargs: Any) -> forms.Field:
        return super().formfield(**{"form_class": forms.DecimalField, **kwargs})


def qty_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(**QTY_DIGITS, null=True, blank=True, **kwargs)


def price_field(**kwargs) -> ExactDecimalField:
    """A price or money figure from the broker, exact at any precision."""
    return ExactDecimalField(null=True, blank=True, **kwargs)


def account_field() -> models.CharField:
    """The account a row belongs to (docs/design.md section 16): the name from the accounts'
    configuration, kept when the account leaves it. Writers pass it; the default (the default
    account) is for rows from before accounts, which the migration gave it."""
    return models.CharField(
        max_length=NAME_MAX,
        default=rows_owner_name,
        db_index=True,
        help_text="The trading account (ACCOUNTS_FILE) this row belongs to.",
    )
