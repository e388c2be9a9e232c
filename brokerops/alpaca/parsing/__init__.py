"""Parse Alpaca's JSON (plain dicts from alpaca-py's ``raw_data=True``) into the gateway's types.

Strict where the project depends on a field (ids, symbols, quantities: a missing or non-numeric
quantity is a malformed response), lenient about everything else: enumerated values stay strings
and unknown fields are ignored, so a new exchange or order status never breaks a read.
Every failure is a :class:`ParseError` (a ``ValueError``), mapped by the gateway to
``BrokerMalformedResponse``.

One module per entity: :mod:`.positions`, :mod:`.orders`, :mod:`.summaries` (orders held lean
for a bulk comparison), :mod:`.account` (the account, assets and latest trade prices),
:mod:`.activities` (account activities, both of Alpaca's shapes); the
checks they share, and the bounds every figure goes through (:func:`bounded_decimal`,
:func:`broker_price`), are in :mod:`.values`.
"""

from .account import parse_account, parse_asset, parse_latest_trades
from .activities import parse_activities, parse_activity
from .orders import parse_order, parse_orders
from .positions import parse_position, parse_positions
from .summaries import SharedStrings, parse_order_summaries, parse_order_summary_fields
from .values import (
    MAX_MAGNITUDE,
    MAX_PLACES,
    ParseError,
    bounded_decimal,
    broker_price,
    parse_timestamp,
    require_list,
)

__all__ = [
    "MAX_MAGNITUDE",
    "MAX_PLACES",
    "ParseError",
    "SharedStrings",
    "bounded_decimal",
    "broker_price",
    "parse_account",
    "parse_activities",
    "parse_activity",
    "parse_asset",
    "parse_latest_trades",
    "parse_order",
    "parse_order_summaries",
    "parse_order_summary_fields",
    "parse_orders",
    "parse_position",
    "parse_positions",
    "parse_timestamp",
    "require_list",
]
