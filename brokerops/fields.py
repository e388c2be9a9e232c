"""Field shapes shared by the audit models, so money and quantities are stored one way."""

from django.db import models

# Alpaca sends quantities with up to 9 decimals (crypto) and prices with up to 4 below $1.
QTY_DIGITS = {"max_digits": 28, "decimal_places": 9}
PRICE_DIGITS = {"max_digits": 20, "decimal_places": 6}
CLIENT_ORDER_ID_MAX = 128  # Alpaca's limit
# Firestore document ids are up to 1,500 bytes of UTF-8, so at most 1,500 characters: audit
# columns holding a signal id take any id whole (no hashing, no truncation; searchable as is).
SIGNAL_ID_MAX = 1500


def qty_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(**QTY_DIGITS, null=True, blank=True, **kwargs)


def price_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(**PRICE_DIGITS, null=True, blank=True, **kwargs)
