"""The paper broker's book: assets, prices, positions, orders, cash, and the fill model.

One re-entrant lock guards everything; every public method takes it, so the HTTP threads and a
test's Python handle can call in at once. Methods that serve the API return the JSON Alpaca would
send (``dict``/``list``) and raise :class:`~brokerops.sim.errors.ApiError` with Alpaca's status,
code and message.

Fill model (see ``PaperBroker`` for the caller's view):

- a new order reaches the market when it is submitted, or, with ``fidelity.fill_delay_s`` > 0,
  that many seconds later: until then it is ``pending_new`` with nothing filled and the fill
  model leaves it alone (:meth:`Book.release_due` releases it; ``PaperBroker`` runs a thread that
  does so on time, :meth:`Book.settle` waits for it);
- on reaching the market a market order fills in full at the asset's current price;
- a limit order fills at the current price once that price crosses the limit (buy: price <= limit,
  sell: price >= limit), checked when it reaches the market and on every :meth:`Book.set_price`;
  ``ioc``/``fok`` limit orders that do not cross at once are canceled, others rest as ``new``;
- a stop order triggers when the price reaches the stop (buy: price >= stop, sell: price <= stop)
  and then fills at market; a stop-limit order then rests as a limit order; trailing stops rest;
- with ``auto_fill`` off nothing fills on its own (new orders rest as ``accepted``):
  :meth:`Book.fill_order` fills by hand, in part or in full, which is how tests make
  ``partially_filled`` orders and fills that lag.

Fills move the signed position (longs positive, shorts negative, a position at zero disappears,
``avg_entry_price`` is the weighted average of the fills that opened it) and cash; a crypto fill
pays ``fidelity.crypto_fee_bps`` (a buy in the coin received: the position grows by less than
``filled_qty``, and its ``avg_entry_price`` is what was paid per coin held; a sell in dollars).
Average prices carry 16 decimals, as Alpaca's (``"19660.5738784516887649"``). One order never
flips a position: selling more than a long (or buying more than a short) is refused with 403
``insufficient qty available``, as Alpaca does.

The other :class:`~brokerops.sim.fidelity.Fidelity` rules are checked on submission: crypto
minimums and cash (``crypto_rules``), buying power held by open orders
(``reserve_buying_power``), wash trades (``wash_trade_check``); see ``rules.py``.

Order events: every order transition the book applies is handed, as it happens and under the
lock, to :attr:`Book.publisher` (the trade_updates stream, ``stream.py``), with Alpaca's event
name: ``pending_new`` or ``new`` when an order is recorded (``new`` also for an order that rests
``accepted``), ``new`` when a delayed order reaches the market, ``fill``/``partial_fill`` for each
execution (with ``execution_id``, ``price``, ``qty`` and ``position_qty``, the position after it,
net of a crypto fee), ``canceled`` (API, operator, or an ``ioc``/``fok`` that did not cross),
``expired``, ``rejected`` (:meth:`Book.reject_order_manually`). Seeding and raw field overrides
publish nothing; :meth:`Book.emit_trade_update` pushes any event by hand.
"""

from __future__ import annotations

import bisect
import math
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import ROUND_DOWN, Context, Decimal

from . import marketdata, rules
from .errors import (
    MSG_DUPLICATE_CLIENT_ORDER_ID,
    MSG_INSUFFICIENT_BUYING_POWER,
    MSG_ORDER_NOT_FOUND,
    MSG_POSITION_NOT_FOUND,
    ApiError,
    forbidden,
    invalid,
    not_found,
    unprocessable,
)
from .fidelity import LENIENT, Fidelity
from .model import (
    CRYPTO,
    US_EQUITY,
    Asset,
    Order,
    Position,
    Trade,
    asset_id_for,
    fmt_decimal,
    fmt_time,
    from_nanos,
    parse_time,
    to_nanos,
    trade_update_json,
)
from .validation import (
    OrderRequest,
    check_crypto_minimums,
    check_order_rules,
    parse_order_request,
)

QTY_STEP = Decimal("0.000000001")
# Average prices carry 16 decimals, as Alpaca's do (an avg_entry_price of
# "19660.5738784516887649"), computed in a context wide enough never to round before that.
PRICE_STEP = Decimal("1e-16")
_WIDE = Context(prec=60)
ZERO = Decimal(0)
DEFAULT_CASH = Decimal("1000000")
DEFAULT_MULTIPLIER = Decimal(2)

#: Plain attributes ``set_*_fields`` changes on the record itself (and so in the book's logic).
ASSET_ATTRIBUTES = frozenset(
    {
        "exchange",
        "name",
        "status",
        "tradable",
        "marginable",
        "shortable",
        "easy_to_borrow",
        "fractionable",
    }
)
#: Statuses of orders the fill model may still fill.
RESTING_STATUSES = frozenset({"new", "accepted", "pending_new", "partially_filled"})
ORDER_ATTRIBUTES = frozenset(
    {"status", "side", "type", "time_in_force", "order_class", "position_intent", "extended_hours"}
)
#: Crypto size rules served on assets unless ``add_asset`` says otherwise (BTC/USD and ETH/USD
#: have Alpaca's own in ``scenarios.DEFAULT_ASSETS``).
CRYPTO_MIN_ORDER_SIZE = Decimal("0.000000002")
CRYPTO_MIN_TRADE_INCREMENT = Decimal("0.000000001")
CRYPTO_PRICE_INCREMENT = Decimal("0.01")
#: Sizes of the trades the market-data endpoints report.
STOCK_TRADE_SIZE = Decimal(100)
CRYPTO_TRADE_SIZE = Decimal("0.01")
FIRST_TRADE_ID = 52_983_525_029_461
#: ``submitted_at`` precedes ``created_at`` by 1 µs to about 1 ms (Alpaca: a few ms).
SUBMIT_LEAD_NS = (1_000, 997_000)


#: Receives each order event: ``(event, order, timestamp_ns, fields)``, called under the book's
#: lock right after the transition (so the order renders as it is then); must not block.
TradeUpdatePublisher = Callable[[str, Order, int, Mapping[str, object]], None]


def _sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


class Book:
    """All state of the paper broker. Thread-safe; see the module docstring for the fill model."""

    def __init__(
        self,
        *,
        cash: Decimal = DEFAULT_CASH,
        multiplier: Decimal = DEFAULT_MULTIPLIER,
        enforce_buying_power: bool = True,
        auto_fill: bool = True,
        fidelity: Fidelity = LENIENT,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.lock = threading.RLock()
        #: Notified whenever delayed orders are scheduled or released (see :meth:`settle`).
        self.changed = threading.Condition(self.lock)
        self._clock = clock
        self.cash = Decimal(cash)
        self.multiplier = Decimal(multiplier)
        self.enforce_buying_power = enforce_buying_power
        self.auto_fill = auto_fill
        self.fidelity = fidelity
        self.account_id = str(uuid.uuid4())
        self.account_number = "PA" + uuid.uuid4().hex[:10].upper()
        self.created_at = self._clock()
        self._assets: dict[str, Asset] = {}
        self._asset_lookup: dict[str, Asset] = {}
        self._positions: dict[str, Position] = {}
        self._orders: dict[str, Order] = {}
        self._orders_by_client_id: dict[str, Order] = {}
        self._orders_sorted: list[Order] = []
        self._open_by_asset: dict[str, dict[str, Order]] = {}
        self._triggered: set[str] = set()
        self._long_value = ZERO
        self._short_value = ZERO
        self._pending: dict[str, Order] = {}
        self._seq = 0
        self._trade_seq = FIRST_TRADE_ID
        self._last_time = 0
        self._last_submitted = 0
        #: Where order events go (see the module docstring); None: nowhere.
        self.publisher: TradeUpdatePublisher | None = None

    # ------------------------------------------------------------------ time and ids

    def _now(self) -> int:
        """Nanoseconds, strictly later than every stamp handed out before (orders never tie)."""
        now = self._clock()
        if now <= self._last_time:
            now = self._last_time + 1
        self._last_time = now
        return now

    def _submission_stamps(self, seq: int) -> tuple[int, int]:
        """``(submitted_at, created_at)`` of a new order: ``created_at`` is now, ``submitted_at``
        a little (1 µs to 1 ms) before it, yet after every earlier order's ``submitted_at``."""
        created = self._now()
        low, span = SUBMIT_LEAD_NS
        lead = low + (seq * 7_919 * 1_000) % span
        submitted = max(created - lead, self._last_submitted + 1)
        self._last_submitted = submitted
        return submitted, created

    def _next_trade_id(self) -> int:
        self._trade_seq += 1
        return self._trade_seq

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _publish(self, event: str, order: Order, **fields: str) -> None:
        """Hand an order event to the publisher; its timestamp is the order's ``updated_at``
        (the moment of the transition just applied)."""
        publisher = self.publisher
        if publisher is not None:
            publisher(event, order, order.updated_at, fields)

    # ------------------------------------------------------------------ assets and prices

    def add_asset(
        self,
        symbol: str,
        *,
        asset_class: str = US_EQUITY,
        tradable: bool = True,
        fractionable: bool = True,
        shortable: bool = True,
        easy_to_borrow: bool = True,
        marginable: bool = True,
        exchange: str | None = None,
        name: str | None = None,
        status: str = "active",
        price: Decimal = Decimal(100),
        lastday_price: Decimal | None = None,
        asset_id: str | None = None,
        min_order_size: Decimal | None = None,
        min_trade_increment: Decimal | None = None,
        price_increment: Decimal | None = None,
    ) -> dict[str, object]:
        """Add or replace an asset (crypto symbols are ``BASE/QUOTE``); returns its JSON.

        Crypto assets serve ``min_order_size``, ``min_trade_increment`` and ``price_increment``
        (defaults 0.000000002, 0.000000001 and 0.01; enforced under ``fidelity.crypto_rules``).
        The asset's price is also its latest trade for the market-data endpoints.
        """
        with self.lock:
            if asset_class == CRYPTO and "/" not in symbol:
                raise ValueError(f"crypto symbols are written BASE/QUOTE, got {symbol!r}")
            price = Decimal(price)
            if price <= 0:
                raise ValueError("price must be positive")
            existing = self._asset_lookup.get(symbol.upper())
            if existing is not None:
                self._forget_asset_keys(existing)
            asset = Asset(
                id=asset_id or (existing.id if existing else asset_id_for(symbol)),
                symbol=symbol,
                asset_class=asset_class,
                exchange=exchange or ("CRYPTO" if asset_class == CRYPTO else "NASDAQ"),
                name=name or symbol,
                status=status,
                tradable=tradable,
                marginable=marginable and asset_class != CRYPTO,
                shortable=shortable and asset_class != CRYPTO,
                easy_to_borrow=easy_to_borrow and asset_class != CRYPTO,
                fractionable=fractionable,
                price=price,
                lastday_price=Decimal(lastday_price) if lastday_price is not None else price,
            )
            if asset.is_crypto:
                asset.min_order_size = _decimal_or(min_order_size, CRYPTO_MIN_ORDER_SIZE)
                asset.min_trade_increment = _decimal_or(
                    min_trade_increment, CRYPTO_MIN_TRADE_INCREMENT
                )
                asset.price_increment = _decimal_or(price_increment, CRYPTO_PRICE_INCREMENT)
            asset.last_trade = self._trade(asset, price)
            if existing is not None:
                position = self._positions.get(existing.id)
                if position is not None:
                    self._unbook_value(position)
                    position.asset = asset
                    self._book_value(position)
                for order in self._orders.values():
                    if order.asset is existing:
                        order.asset = asset
                        order.touch()
            self._assets[asset.id] = asset
            self._asset_lookup[asset.symbol.upper()] = asset
            self._asset_lookup[asset.position_symbol.upper()] = asset
            self._asset_lookup[asset.id] = asset
            return asset.to_json()

    def _forget_asset_keys(self, asset: Asset) -> None:
        for key in (asset.symbol.upper(), asset.position_symbol.upper(), asset.id):
            self._asset_lookup.pop(key, None)

    def find_asset(self, ref: str) -> Asset | None:
        """The asset for a symbol (``BTC/USD`` or ``BTCUSD``, any case) or an asset id."""
        with self.lock:
            return self._asset_lookup.get(ref.strip().upper()) or self._asset_lookup.get(
                ref.strip().lower()
            )

    def _asset(self, ref: str) -> Asset:
        asset = self.find_asset(ref)
        if asset is None:
            raise KeyError(f"unknown asset {ref!r}")
        return asset

    def asset_json(self, ref: str) -> dict[str, object]:
        """``GET /v2/assets/{symbol_or_id}``; 404 when unknown."""
        with self.lock:
            asset = self.find_asset(ref)
            if asset is None:
                raise not_found(f"asset not found for {ref}")
            return asset.to_json()

    def assets_json(
        self, *, status: str | None = None, asset_class: str | None = None
    ) -> list[dict[str, object]]:
        """``GET /v2/assets`` with Alpaca's ``status`` and ``asset_class`` filters."""
        with self.lock:
            return [
                asset.to_json()
                for asset in self._assets.values()
                if (status is None or asset.status == status)
                and (asset_class is None or asset.asset_class == asset_class)
            ]

    def set_price(
        self, symbol: str, price: Decimal, *, lastday_price: Decimal | None = None
    ) -> list[dict[str, object]]:
        """Move an asset's price, then fill resting orders it crosses; returns the orders filled."""
        with self.lock:
            asset = self._asset(symbol)
            price = Decimal(price)
            if price <= 0:
                raise ValueError("price must be positive")
            position = self._positions.get(asset.id)
            if position is not None:
                self._unbook_value(position)
            asset.price = price
            if lastday_price is not None:
                asset.lastday_price = Decimal(lastday_price)
            if position is not None:
                self._book_value(position)
            asset.last_trade = self._trade(asset, price)
            if not self.auto_fill:
                return []
            return [order.to_json() for order in self._match_resting(asset)]

    def price(self, symbol: str) -> Decimal:
        """The asset's current price."""
        with self.lock:
            return self._asset(symbol).price

    # ------------------------------------------------------------------ market data

    def _trade(
        self, asset: Asset, price: Decimal, size: Decimal | None = None, at: int | None = None
    ) -> Trade:
        default_size = CRYPTO_TRADE_SIZE if asset.is_crypto else STOCK_TRADE_SIZE
        return Trade(
            price=price,
            size=default_size if size is None else size,
            at=self._now() if at is None else at,
            id=self._next_trade_id(),
        )

    def set_market_data(
        self,
        symbol: str,
        price: Decimal | None,
        *,
        size: Decimal | None = None,
        at: datetime | str | None = None,
    ) -> dict[str, object] | None:
        """Set the latest trade the market-data endpoints serve, without moving the book's price
        (fills still use :meth:`price`); ``price`` None removes the symbol's market data (it is
        then absent from their answers) until the next :meth:`set_price`. ``at`` defaults to now
        (an old ``at`` makes stale data). Returns the trade's JSON, or None."""
        with self.lock:
            asset = self._asset(symbol)
            if price is None:
                asset.last_trade = None
                return None
            stamp = _stamp(at)
            asset.last_trade = self._trade(
                asset, Decimal(price), Decimal(size) if size is not None else None, stamp
            )
            return self._trade_json(asset)

    def _trade_json(self, asset: Asset) -> dict[str, object] | None:
        trades = (
            marketdata.crypto_trades([asset])
            if asset.is_crypto
            else marketdata.stock_trades([asset], "sip")
        )["trades"]
        return trades.get(asset.symbol)  # type: ignore[union-attr, return-value]

    def latest_trades_json(
        self, symbols: Iterable[str], *, crypto: bool, feed: str = "sip"
    ) -> dict[str, object]:
        """The market-data latest trades of ``symbols`` (see ``marketdata.py``): symbols are
        matched as the asset is written (``BTC/USD``, any case); unknown ones are left out."""
        with self.lock:
            assets = []
            for symbol in symbols:
                asset = self._asset_lookup.get(symbol.strip().upper())
                if asset is not None and asset.symbol.upper() == symbol.strip().upper():
                    assets.append(asset)
            if crypto:
                return marketdata.crypto_trades(assets)
            return marketdata.stock_trades(assets, feed)

    def set_asset_fields(self, symbol: str, /, **fields: object) -> dict[str, object]:
        """Set raw values: plain attributes change the record, anything else overrides the JSON."""
        with self.lock:
            asset = self._asset(symbol)
            for key, value in fields.items():
                if key in ASSET_ATTRIBUTES:
                    setattr(asset, key, value)
                else:
                    asset.extra[key] = value
            return asset.to_json()

    # ------------------------------------------------------------------ positions and account

    def _book_value(self, position: Position) -> None:
        value = position.market_value()
        if value > 0:
            self._long_value += value
        else:
            self._short_value += value

    def _unbook_value(self, position: Position) -> None:
        value = position.market_value()
        if value > 0:
            self._long_value -= value
        else:
            self._short_value -= value

    def equity(self) -> Decimal:
        with self.lock:
            return self.cash + self._long_value + self._short_value

    def buying_power(self) -> Decimal:
        """Reg-T style: ``equity * multiplier - gross market value``, less what open orders hold
        under ``fidelity.reserve_buying_power``; never below zero."""
        with self.lock:
            gross = self._long_value - self._short_value
            return max(ZERO, self.equity() * self.multiplier - gross - self.reserved())

    def non_marginable_buying_power(self) -> Decimal:
        """Cash for what cannot be bought on margin (crypto), less what open orders hold under
        ``fidelity.reserve_buying_power``; never below zero."""
        with self.lock:
            return max(ZERO, self.cash - self.reserved())

    def reserved(self) -> Decimal:
        """Buying power held by open opening orders (0 unless ``reserve_buying_power``)."""
        with self.lock:
            if not self.fidelity.reserve_buying_power:
                return ZERO
            return rules.reserved_value(
                order for bucket in self._open_by_asset.values() for order in bucket.values()
            )

    def set_cash(self, cash: Decimal) -> None:
        with self.lock:
            self.cash = Decimal(cash)

    def account_json(self) -> dict[str, object]:
        """``GET /v2/account``."""
        with self.lock:
            equity = self.equity()
            buying_power = self.buying_power()
            cash_power = self.non_marginable_buying_power()
            long_value, short_value = self._long_value, self._short_value
            gross = long_value - short_value
            margin = gross / 2
            cash = self.cash
            return {
                "id": self.account_id,
                "admin_configurations": {},
                "user_configurations": None,
                "account_number": self.account_number,
                "status": "ACTIVE",
                "crypto_status": "ACTIVE",
                "options_approved_level": 0,
                "options_trading_level": 0,
                "currency": "USD",
                "buying_power": fmt_decimal(buying_power),
                "regt_buying_power": fmt_decimal(buying_power),
                "daytrading_buying_power": fmt_decimal(buying_power * 2),
                "effective_buying_power": fmt_decimal(buying_power),
                "non_marginable_buying_power": fmt_decimal(cash_power),
                "options_buying_power": fmt_decimal(cash_power),
                "bod_dtbp": "0",
                "cash": fmt_decimal(cash),
                "accrued_fees": "0",
                "pending_transfer_in": "0",
                "portfolio_value": fmt_decimal(equity),
                "pattern_day_trader": False,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "created_at": fmt_time(self.created_at),
                "trade_suspended_by_user": False,
                "multiplier": fmt_decimal(self.multiplier),
                "shorting_enabled": True,
                "equity": fmt_decimal(equity),
                "last_equity": fmt_decimal(equity),
                "long_market_value": fmt_decimal(long_value),
                "short_market_value": fmt_decimal(short_value),
                "position_market_value": fmt_decimal(gross),
                "initial_margin": fmt_decimal(margin),
                "maintenance_margin": fmt_decimal(gross * Decimal("0.3")),
                "last_maintenance_margin": fmt_decimal(gross * Decimal("0.3")),
                "sma": fmt_decimal(equity),
                "daytrade_count": 0,
                "balance_asof": from_nanos(self._clock()).date().isoformat(),
                "crypto_tier": 1,
                "intraday_adjustments": "0",
                "pending_reg_taf_fees": "0",
            }

    def _held(self, asset: Asset, side: str) -> Decimal:
        """Unfilled quantity of open ``side`` orders on the asset."""
        orders = self._open_by_asset.get(asset.id)
        if not orders:
            return ZERO
        return sum((o.remaining_qty(asset.price) for o in orders.values() if o.side == side), ZERO)

    def _position_json(self, position: Position) -> dict[str, object]:
        closing_side = "sell" if position.qty > 0 else "buy"
        return position.to_json(self._held(position.asset, closing_side))

    def positions_json(self) -> list[dict[str, object]]:
        """``GET /v2/positions``: every open position."""
        with self.lock:
            return [self._position_json(p) for p in self._positions.values()]

    def _find_position(self, ref: str) -> Position:
        """By position symbol (``BTCUSD``, ``AAPL``) or asset id; ``BTC/USD`` never matches."""
        ref = ref.strip()
        if "/" in ref:
            raise not_found(MSG_POSITION_NOT_FOUND)
        asset = self._asset_lookup.get(ref.upper()) or self._asset_lookup.get(ref.lower())
        if asset is None:
            raise not_found(MSG_POSITION_NOT_FOUND)
        position = self._positions.get(asset.id)
        if position is None:
            raise not_found(MSG_POSITION_NOT_FOUND)
        return position

    def position_json(self, ref: str) -> dict[str, object]:
        """``GET /v2/positions/{symbol_or_asset_id}``; 404 ``position does not exist``."""
        with self.lock:
            return self._position_json(self._find_position(ref))

    def seed_position(
        self, symbol: str, qty: Decimal, avg_entry_price: Decimal | None = None
    ) -> dict[str, object] | None:
        """Set a position outright (no order, cash unchanged); ``qty`` 0 removes it."""
        with self.lock:
            asset = self._asset(symbol)
            qty = Decimal(qty)
            existing = self._positions.pop(asset.id, None)
            if existing is not None:
                self._unbook_value(existing)
            if not qty:
                return None
            avg = Decimal(avg_entry_price) if avg_entry_price is not None else asset.price
            position = Position(asset=asset, qty=qty, avg_entry_price=avg)
            self._positions[asset.id] = position
            self._book_value(position)
            return self._position_json(position)

    def set_position_fields(self, symbol: str, /, **fields: object) -> dict[str, object]:
        """Override keys of a position's JSON (raw values; :data:`DROP` removes a key)."""
        with self.lock:
            position = self._find_position(self._asset(symbol).position_symbol)
            position.extra.update(fields)
            return self._position_json(position)

    def _move_position(self, asset: Asset, delta: Decimal, price: Decimal) -> None:
        position = self._positions.get(asset.id)
        if position is None:
            position = Position(asset=asset, qty=delta, avg_entry_price=price)
            self._positions[asset.id] = position
            self._book_value(position)
            return
        self._unbook_value(position)
        old_qty = position.qty
        new_qty = old_qty + delta
        if not new_qty:
            del self._positions[asset.id]
            return
        if _sign(new_qty) != _sign(old_qty):
            position.avg_entry_price = price
        elif abs(new_qty) > abs(old_qty):
            total = _WIDE.add(
                _WIDE.multiply(old_qty, position.avg_entry_price), _WIDE.multiply(delta, price)
            )
            position.avg_entry_price = _WIDE.divide(total, new_qty).quantize(
                PRICE_STEP, context=_WIDE
            )
        position.qty = new_qty
        self._book_value(position)

    # ------------------------------------------------------------------ orders: indexes

    def _index_order(self, order: Order) -> None:
        self._orders[order.id] = order
        self._orders_by_client_id[order.client_order_id] = order
        bisect.insort(self._orders_sorted, order, key=lambda o: o.sort_key)
        if order.is_open:
            self._open_by_asset.setdefault(order.asset.id, {})[order.id] = order

    def _reindex_open(self, order: Order) -> None:
        bucket = self._open_by_asset.get(order.asset.id)
        if order.is_open:
            self._open_by_asset.setdefault(order.asset.id, {})[order.id] = order
        else:
            if bucket is not None:
                bucket.pop(order.id, None)
                if not bucket:
                    del self._open_by_asset[order.asset.id]
            self._triggered.discard(order.id)
            if self._pending.pop(order.id, None) is not None:
                order.due = None
                self.changed.notify_all()

    def _find_order(self, ref: str) -> Order:
        order = self._orders.get(ref.strip().lower()) or self._orders_by_client_id.get(ref)
        if order is None:
            raise not_found(MSG_ORDER_NOT_FOUND)
        return order

    # ------------------------------------------------------------------ orders: submission

    def submit_order(self, body: object) -> dict[str, object]:
        """``POST /v2/orders``: validate like Alpaca, record, then the fill model (at once, or
        after ``fidelity.fill_delay_s``: the answer is then ``pending_new``)."""
        request = parse_order_request(body)
        with self.lock:
            asset = self.find_asset(request.symbol)
            if asset is None:
                raise invalid(f'asset "{request.symbol}" not found')
            if not asset.tradable or asset.status != "active":
                raise unprocessable(f'asset "{asset.symbol}" is not tradable')
            check_order_rules(request, asset)
            if request.client_order_id is not None and (
                request.client_order_id in self._orders_by_client_id
            ):
                raise invalid(MSG_DUPLICATE_CLIENT_ORDER_ID)
            if asset.is_crypto and self.fidelity.crypto_rules:
                position = self._positions.get(asset.id)
                check_crypto_minimums(
                    request,
                    asset,
                    price=self._estimated_price(request, asset),
                    min_cost=self.fidelity.crypto_min_cost,
                    whole_holding=(
                        request.side == "sell"
                        and position is not None
                        and request.qty == position.qty
                    ),
                )
            self._check_wash_trade(request, asset)
            intent = self._check_exposure(request, asset)
            order = self._record(request, asset, intent)
            self._launch(order)
            return order.to_json()

    def _check_wash_trade(self, request: OrderRequest, asset: Asset) -> None:
        if not self.fidelity.wash_trade_check:
            return
        bucket = self._open_by_asset.get(asset.id)
        refusal = rules.wash_trade(request, bucket.values()) if bucket else None
        if refusal is not None:
            raise refusal

    def _estimated_qty(self, request: OrderRequest, asset: Asset) -> Decimal:
        if request.qty is not None:
            return request.qty
        assert request.notional is not None
        return (request.notional / asset.price).quantize(QTY_STEP, rounding=ROUND_DOWN)

    def _estimated_price(self, request: OrderRequest, asset: Asset) -> Decimal:
        if request.type in ("limit", "stop_limit") and request.limit_price is not None:
            return request.limit_price
        if request.type == "stop" and request.stop_price is not None:
            return request.stop_price
        return asset.price

    def _check_exposure(self, request: OrderRequest, asset: Asset) -> str:
        """Held quantity, shorting and buying power; returns the ``position_intent``."""
        qty = self._estimated_qty(request, asset)
        position = self._positions.get(asset.id)
        held_qty = position.qty if position is not None else ZERO
        closing = (request.side == "sell" and held_qty > 0) or (
            request.side == "buy" and held_qty < 0
        )
        if closing:
            held_for_orders = self._held(asset, request.side)
            available = max(abs(held_qty) - held_for_orders, ZERO)
            if qty > available:
                raise self._insufficient(asset, qty, available, abs(held_qty), held_for_orders)
            return "sell_to_close" if request.side == "sell" else "buy_to_close"
        if request.side == "sell":
            if asset.is_crypto:
                raise self._insufficient(asset, qty, ZERO, abs(held_qty), ZERO)
            if not asset.shortable or not asset.easy_to_borrow:
                raise unprocessable(f'asset "{asset.symbol}" cannot be sold short')
            if request.is_fractional:
                raise unprocessable("fractional orders cannot be sold short")
        if self.enforce_buying_power:
            cost = (
                request.notional
                if request.notional is not None
                else qty * self._estimated_price(request, asset)
            )
            if asset.is_crypto and self.fidelity.crypto_rules:
                cash_power = self.non_marginable_buying_power()
                if cost > cash_power:
                    quote = asset.symbol.split("/")[1] if "/" in asset.symbol else "USD"
                    shown = f"requested: {fmt_decimal(cost)}, available: {fmt_decimal(cash_power)}"
                    raise forbidden(
                        f"insufficient balance for {quote} ({shown})",
                        available=fmt_decimal(cash_power),
                        balance=fmt_decimal(max(self.cash, ZERO)),
                    )
            else:
                buying_power = self.buying_power()
                if cost > buying_power:
                    raise forbidden(
                        MSG_INSUFFICIENT_BUYING_POWER,
                        buying_power=fmt_decimal(buying_power),
                        cost_basis=fmt_decimal(cost),
                    )
        return "buy_to_open" if request.side == "buy" else "sell_to_open"

    @staticmethod
    def _insufficient(
        asset: Asset, qty: Decimal, available: Decimal, existing: Decimal, held: Decimal
    ) -> ApiError:
        """Alpaca's 403 for selling (or covering) more than is available, with its fields."""
        counts = f"(requested: {fmt_decimal(qty)}, available: {fmt_decimal(available)})"
        if asset.is_crypto:
            return forbidden(
                f"insufficient balance for {asset.symbol.split('/')[0]} {counts}",
                available=fmt_decimal(available),
                balance=fmt_decimal(existing),
            )
        return forbidden(
            f"insufficient qty available for order {counts}",
            available=fmt_decimal(available),
            existing_qty=fmt_decimal(existing),
            held_for_orders=fmt_decimal(held),
            symbol=asset.symbol,
        )

    def _record(self, request: OrderRequest, asset: Asset, intent: str) -> Order:
        seq = self._next_seq()
        submitted, created = self._submission_stamps(seq)
        if not self.auto_fill:
            status = "accepted"
        elif self.fidelity.fill_delay_s > 0:
            status = "pending_new"
        else:
            status = "new"
        order = Order(
            id=str(uuid.uuid4()),
            client_order_id=request.client_order_id or str(uuid.uuid4()),
            asset=asset,
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            qty=request.qty,
            notional=request.notional,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            trail_price=request.trail_price,
            trail_percent=request.trail_percent,
            extended_hours=request.extended_hours,
            status=status,
            created_at=created,
            submitted_at=submitted,
            updated_at=created,
            seq=seq,
            position_intent=intent,
        )
        self._index_order(order)
        self._publish("pending_new" if status == "pending_new" else "new", order)
        return order

    def _launch(self, order: Order) -> None:
        """Send a new order to the fill model now, or schedule it ``fill_delay_s`` from now."""
        if not self.auto_fill:
            return
        delay = self.fidelity.fill_delay_s
        if delay > 0:
            order.due = time.monotonic() + delay
            self._pending[order.id] = order
            self.changed.notify_all()
        else:
            self._process_new(order)

    # ------------------------------------------------------------------ orders: fill delay

    def next_due(self) -> float | None:
        """``time.monotonic()`` at which the next delayed order reaches the market, or None."""
        with self.lock:
            dues = [order.due for order in self._pending.values() if order.due is not None]
            return min(dues) if dues else None

    def pending_count(self) -> int:
        """Orders still waiting out the fill delay."""
        with self.lock:
            return len(self._pending)

    def release_due(self, now: float | None = None) -> list[dict[str, object]]:
        """Send every delayed order whose time has come (``now``: ``time.monotonic()``) to the
        fill model, oldest first; returns them as served afterwards."""
        with self.lock:
            now = time.monotonic() if now is None else now
            due = sorted(
                (o for o in self._pending.values() if o.due is not None and o.due <= now),
                key=lambda o: o.seq,
            )
            for order in due:
                self._pending.pop(order.id, None)
                order.due = None
                if not order.is_open:
                    continue
                if self.auto_fill:
                    self._process_new(order)
                elif order.status == "pending_new":
                    self._set_status(order, "accepted")
                    self._publish("new", order)
            if due:
                self.changed.notify_all()
            return [order.to_json() for order in due]

    def release_pending(self) -> list[dict[str, object]]:
        """Send every delayed order to the fill model now, whatever its time."""
        return self.release_due(math.inf)

    def settle(self, timeout: float | None = 5.0) -> bool:
        """Wait until no order waits out the fill delay (releasing those due meanwhile, so it
        works whether or not the broker's thread runs); False when ``timeout`` passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.changed:
            while True:
                self.release_due()
                due = self.next_due()
                if due is None:
                    return True
                now = time.monotonic()
                wait = due - now
                if deadline is not None:
                    if now >= deadline:
                        return False
                    wait = min(wait, deadline - now)
                self.changed.wait(max(wait, 0.0))

    def _set_status(self, order: Order, status: str) -> None:
        order.status = status
        order.updated_at = self._now()
        order.touch()

    # ------------------------------------------------------------------ orders: fill model

    def _crosses(self, order: Order, price: Decimal) -> bool:
        """Whether ``order`` executes at ``price`` now; a stop that is reached stays triggered."""
        order_type = order.type
        if order_type == "market":
            return True
        if order_type in ("stop", "stop_limit"):
            if order.id not in self._triggered:
                stop = order.stop_price
                if stop is None:
                    return False
                if not (price >= stop if order.side == "buy" else price <= stop):
                    return False
                self._triggered.add(order.id)
            if order_type == "stop":
                return True
        if order_type in ("limit", "stop_limit"):
            limit = order.limit_price
            if limit is None:
                return False
            return price <= limit if order.side == "buy" else price >= limit
        return False

    def _process_new(self, order: Order) -> None:
        """The order reaches the market: fill, cancel (``ioc``/``fok``) or rest as ``new``."""
        if order.status == "pending_new":
            self._set_status(order, "new")
            self._publish("new", order)
        price = order.asset.price
        if self._crosses(order, price):
            self._fill(order, order.remaining_qty(price), price)
        elif order.time_in_force in ("ioc", "fok"):
            self._cancel(order)

    def _match_resting(self, asset: Asset) -> list[Order]:
        orders = self._open_by_asset.get(asset.id)
        if not orders:
            return []
        filled: list[Order] = []
        for order in sorted(orders.values(), key=lambda o: o.seq):
            if not order.fillable or order.due is not None or order.status not in RESTING_STATUSES:
                continue
            if self._crosses(order, asset.price):
                remaining = order.remaining_qty(asset.price)
                if remaining > 0 and not self._would_flip(order, remaining):
                    self._fill(order, remaining, asset.price)
                    filled.append(order)
        return filled

    def _would_flip(self, order: Order, qty: Decimal) -> bool:
        """A resting closing order may only close what is still held (never flip the position)."""
        if order.position_intent not in ("sell_to_close", "buy_to_close"):
            return False
        position = self._positions.get(order.asset.id)
        held = position.qty if position is not None else ZERO
        return qty > abs(held) or (order.side == "sell") != (held > 0)

    def _fill(self, order: Order, qty: Decimal, price: Decimal) -> None:
        if order.qty is None:
            qty = qty.quantize(QTY_STEP, rounding=ROUND_DOWN)
        if qty <= 0:
            return
        now = self._now()
        previous = order.filled_qty
        total = previous + qty
        paid = _WIDE.add(
            _WIDE.multiply(previous, order.filled_avg_price or ZERO), _WIDE.multiply(qty, price)
        )
        order.filled_avg_price = _WIDE.divide(paid, total).quantize(PRICE_STEP, context=_WIDE)
        order.filled_qty = total
        order.updated_at = now
        order.touch()
        if order.qty is None or total >= order.qty:
            order.status = "filled"
            order.filled_at = now
        else:
            order.status = "partially_filled"
        self._reindex_open(order)
        signed = qty if order.side == "buy" else -qty
        cash_delta = -signed * price
        fee_bps = self.fidelity.crypto_fee_bps if order.asset.is_crypto else ZERO
        entry_price = price
        if fee_bps and order.side == "buy":
            signed -= rules.crypto_fee(qty, fee_bps)  # paid in the coin received
            if signed > 0:  # what was paid per coin held: many digits, as Alpaca's averages
                entry_price = _WIDE.divide(_WIDE.multiply(qty, price), signed).quantize(
                    PRICE_STEP, context=_WIDE
                )
        elif fee_bps:
            cash_delta -= cash_delta * fee_bps / rules.BPS  # paid in the dollars received
        if signed:
            self._move_position(order.asset, signed, entry_price)
        self.cash += cash_delta
        position = self._positions.get(order.asset.id)
        self._publish(
            "fill" if order.status == "filled" else "partial_fill",
            order,
            execution_id=str(uuid.uuid4()),
            price=fmt_decimal(price),
            qty=fmt_decimal(qty),
            position_qty=fmt_decimal(position.qty if position is not None else ZERO),
        )

    def _cancel(self, order: Order) -> None:
        now = self._now()
        order.status = "canceled"
        order.canceled_at = now
        order.updated_at = now
        order.touch()
        self._reindex_open(order)
        self._publish("canceled", order)

    def fill_order(
        self, ref: str, qty: Decimal | None = None, price: Decimal | None = None
    ) -> dict[str, object]:
        """Fill an open order by hand (all that remains, or ``qty``), at ``price`` or market."""
        with self.lock:
            order = self._find_order(ref)
            if not order.is_open:
                raise ValueError(f"order {order.id} is {order.status}")
            fill_price = Decimal(price) if price is not None else order.asset.price
            remaining = order.remaining_qty(fill_price)
            fill_qty = remaining if qty is None else min(Decimal(qty), remaining)
            self._fill(order, fill_qty, fill_price)
            return order.to_json()

    def match_orders(self, symbol: str | None = None) -> list[dict[str, object]]:
        """Run the fill model over resting orders (of one symbol or all); returns those filled."""
        with self.lock:
            assets = [self._asset(symbol)] if symbol else list(self._assets.values())
            filled: list[Order] = []
            for asset in assets:
                filled.extend(self._match_resting(asset))
            return [order.to_json() for order in filled]

    def expire_day_orders(self) -> int:
        """End the trading day: open ``day`` orders become ``expired``; returns how many."""
        with self.lock:
            count = 0
            for bucket in list(self._open_by_asset.values()):
                for order in list(bucket.values()):
                    if order.time_in_force == "day":
                        now = self._now()
                        order.status = "expired"
                        order.expired_at = now
                        order.updated_at = now
                        order.touch()
                        self._reindex_open(order)
                        self._publish("expired", order)
                        count += 1
            return count

    # ------------------------------------------------------------------ orders: reads

    def order_json(self, order_id: str) -> dict[str, object]:
        """``GET /v2/orders/{order_id}``; 404 ``order not found``."""
        with self.lock:
            order = self._orders.get(order_id.strip().lower())
            if order is None:
                raise not_found(MSG_ORDER_NOT_FOUND)
            return order.to_json()

    def order_by_client_id_json(self, client_order_id: str) -> dict[str, object]:
        """``GET /v2/orders:by_client_order_id``; 404 ``order not found``."""
        with self.lock:
            order = self._orders_by_client_id.get(client_order_id)
            if order is None:
                raise not_found(MSG_ORDER_NOT_FOUND)
            return order.to_json()

    def _select_orders(
        self,
        *,
        status: str,
        limit: int,
        after: int | None,
        until: int | None,
        direction: str,
        symbols: Iterable[str] | None,
        side: str | None,
    ) -> list[Order]:
        wanted = {s.replace("/", "").upper() for s in symbols} if symbols else None
        items = self._orders_sorted
        low = 0
        high = len(items)
        key = Order.sort_key.fget  # type: ignore[attr-defined]
        if after is not None:
            low = bisect.bisect_left(items, (after, sys.maxsize), key=key)
        if until is not None:
            high = bisect.bisect_left(items, (until, -1), key=key)
        indexes = range(low, high) if direction == "asc" else range(high - 1, low - 1, -1)
        result: list[Order] = []
        for index in indexes:
            order = items[index]
            if status == "open" and not order.is_open:
                continue
            if status == "closed" and order.is_open:
                continue
            if side is not None and order.side != side:
                continue
            if wanted is not None and order.asset.position_symbol.upper() not in wanted:
                continue
            result.append(order)
            if len(result) >= limit:
                break
        return result

    def list_orders_json(
        self,
        *,
        status: str = "open",
        limit: int = 50,
        after: datetime | str | int | None = None,
        until: datetime | str | int | None = None,
        direction: str = "desc",
        symbols: Iterable[str] | None = None,
        side: str | None = None,
    ) -> list[dict[str, object]]:
        """``GET /v2/orders``: ``after``/``until`` are exclusive bounds on ``submitted_at``,
        compared to the nanosecond (datetimes, RFC 3339 text or integer nanoseconds).

        Orders are sorted by ``submitted_at`` (ties by arrival), newest first unless ``direction``
        is ``asc``; at most ``limit`` are returned. ``symbols`` match the order's symbol with or
        without the slash (``BTC/USD`` or ``BTCUSD``).
        """
        with self.lock:
            orders = self._select_orders(
                status=status,
                limit=limit,
                after=_stamp(after),
                until=_stamp(until),
                direction=direction,
                symbols=symbols,
                side=side,
            )
            return [order.to_json() for order in orders]

    def list_orders_bytes(self, **filters: object) -> bytes:
        """:meth:`list_orders_json` already encoded as a JSON array (the HTTP fast path)."""
        options: dict[str, object] = {
            "status": "open",
            "limit": 50,
            "after": None,
            "until": None,
            "direction": "desc",
            "symbols": None,
            "side": None,
        }
        options.update(filters)
        with self.lock:
            orders = self._select_orders(**options)  # type: ignore[arg-type]
            return b"[" + b",".join(order.raw_json() for order in orders) + b"]"

    # ------------------------------------------------------------------ orders: cancel

    def cancel_order(self, order_id: str) -> None:
        """``DELETE /v2/orders/{order_id}``: 404 when unknown, 422 when no longer open."""
        with self.lock:
            order = self._orders.get(order_id.strip().lower())
            if order is None:
                raise not_found(MSG_ORDER_NOT_FOUND)
            if not order.is_open:
                raise unprocessable(f'order is already in "{order.status}" state')
            self._cancel(order)

    def cancel_all_orders(self) -> list[dict[str, object]]:
        """``DELETE /v2/orders``: cancel every open order; Alpaca's per-order status list."""
        with self.lock:
            result: list[dict[str, object]] = []
            for bucket in list(self._open_by_asset.values()):
                for order in list(bucket.values()):
                    self._cancel(order)
                    result.append({"id": order.id, "status": 200, "body": None})
            return result

    def cancel_order_manually(self, ref: str) -> dict[str, object]:
        """Cancel by order id or client_order_id, as an operator would in the dashboard."""
        with self.lock:
            order = self._find_order(ref)
            if not order.is_open:
                raise ValueError(f"order {order.id} is {order.status}, not open")
            self._cancel(order)
            return order.to_json()

    def reject_order_manually(self, ref: str) -> dict[str, object]:
        """Reject an open order after it was accepted, as the venue may (by id or
        client_order_id): ``rejected`` with ``failed_at``; publishes ``rejected``."""
        with self.lock:
            order = self._find_order(ref)
            if not order.is_open:
                raise ValueError(f"order {order.id} is {order.status}, not open")
            now = self._now()
            order.status = "rejected"
            order.failed_at = now
            order.updated_at = now
            order.touch()
            self._reindex_open(order)
            self._publish("rejected", order)
            return order.to_json()

    def emit_trade_update(self, ref: str, event: str, **fields: object) -> dict[str, object]:
        """Publish ``event`` for an order as it is now, without changing it (events the book
        does not model: ``replaced``, ``done_for_day``, ...); ``fields`` are added to the
        event's data. Returns the data as pushed."""
        with self.lock:
            order = self._find_order(ref)
            at = self._now()
            if self.publisher is not None:
                self.publisher(event, order, at, fields)
            return trade_update_json(event, order, at, fields)

    # ------------------------------------------------------------------ positions: close

    def _close_request(self, position: Position, qty: Decimal) -> OrderRequest:
        asset = position.asset
        return OrderRequest(
            symbol=asset.symbol,
            side="sell" if position.qty > 0 else "buy",
            type="market",
            time_in_force="gtc" if asset.is_crypto else "day",
            qty=qty,
            notional=None,
            limit_price=None,
            stop_price=None,
            trail_price=None,
            trail_percent=None,
            extended_hours=False,
            client_order_id=None,
            order_class="simple",
            raw_prices={},
        )

    def close_position(
        self, ref: str, *, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> dict[str, object]:
        """``DELETE /v2/positions/{symbol_or_asset_id}``: a market order the opposite way."""
        with self.lock:
            position = self._find_position(ref)
            held = abs(position.qty)
            if qty is not None and percentage is not None:
                raise invalid("only one of qty or percentage is allowed")
            if percentage is not None:
                if not ZERO < percentage <= 100:
                    raise invalid("percentage must be between 0 and 100")
                close_qty = (held * percentage / 100).quantize(QTY_STEP, rounding=ROUND_DOWN)
                if held == held.to_integral_value() and not position.asset.is_crypto:
                    close_qty = close_qty.to_integral_value(rounding=ROUND_DOWN)
            elif qty is not None:
                close_qty = qty
            else:
                close_qty = held
            if close_qty <= 0:
                raise invalid("qty must be > 0")
            request = self._close_request(position, close_qty)
            self._check_wash_trade(request, position.asset)
            intent = self._check_exposure(request, position.asset)
            order = self._record(request, position.asset, intent)
            self._launch(order)
            return order.to_json()

    def close_all_positions(self, *, cancel_orders: bool = False) -> list[dict[str, object]]:
        """``DELETE /v2/positions``: close each position; Alpaca's per-symbol status list."""
        with self.lock:
            if cancel_orders:
                self.cancel_all_orders()
            result: list[dict[str, object]] = []
            for position in list(self._positions.values()):
                symbol = position.asset.position_symbol
                try:
                    order = self.close_position(position.asset.id)
                except ApiError as error:
                    result.append({"symbol": symbol, "status": error.status, "body": error.body()})
                else:
                    result.append(
                        {"symbol": symbol, "status": 200, "order_id": order["id"], "body": order}
                    )
            return result

    def close_position_manually(
        self, symbol: str, *, with_order: bool = True
    ) -> dict[str, object] | None:
        """Close a whole position as an operator would in the dashboard.

        With ``with_order`` (default) a filled market order (a client_order_id this system never
        made) records the trade and moves cash; without it the position just disappears. Returns
        the order's JSON, or None. Open orders on the symbol stay open.
        """
        with self.lock:
            asset = self._asset(symbol)
            position = self._positions.get(asset.id)
            if position is None:
                raise KeyError(f"no position in {symbol}")
            if not with_order:
                self._unbook_value(position)
                del self._positions[asset.id]
                return None
            request = self._close_request(position, abs(position.qty))
            intent = "sell_to_close" if position.qty > 0 else "buy_to_close"
            order = self._record(request, asset, intent)
            self._fill(order, abs(position.qty), asset.price)
            return order.to_json()

    # ------------------------------------------------------------------ seeding and raw fields

    def seed_order(
        self,
        symbol: str,
        qty: Decimal | None = None,
        side: str = "buy",
        *,
        notional: Decimal | None = None,
        type: str = "market",
        time_in_force: str = "day",
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        status: str = "new",
        client_order_id: str | None = None,
        order_id: str | None = None,
        submitted_at: datetime | str | None = None,
        created_at: datetime | str | None = None,
        updated_at: datetime | str | None = None,
        filled_qty: Decimal | None = None,
        filled_avg_price: Decimal | None = None,
        filled_at: datetime | str | None = None,
        canceled_at: datetime | str | None = None,
        extended_hours: bool = False,
        position_intent: str | None = None,
        move_position: bool = False,
        fillable: bool = False,
    ) -> dict[str, object]:
        """Record an order without validation or HTTP (fast: 20,000 in well under a second).

        ``status`` may be any string. A ``filled`` order defaults ``filled_qty`` to ``qty``,
        ``filled_avg_price`` to the current price and ``filled_at`` to ``submitted_at``; a
        ``canceled`` order defaults ``canceled_at``. Positions and cash stay as they are unless
        ``move_position`` applies the filled quantity. An open seeded order rests untouched by
        the fill model (``set_price`` never fills it) unless ``fillable``; :meth:`fill_order`
        fills it on demand. Times default to now (strictly increasing); naive datetimes are UTC;
        RFC 3339 text keeps up to nine fractional digits (nanoseconds).
        Orders sharing a ``submitted_at`` can straddle a page boundary and be skipped by exclusive
        ``after``/``until`` paging, as at Alpaca. Raises ``ValueError`` for a reused
        client_order_id.
        """
        with self.lock:
            asset = self._asset(symbol)
            if client_order_id is not None and client_order_id in self._orders_by_client_id:
                raise ValueError(f"client_order_id {client_order_id!r} already used")
            if qty is None and notional is None:
                raise ValueError("qty or notional is required")
            submitted = _stamp(submitted_at)
            if submitted is None:
                submitted = self._now()
                self._last_submitted = max(self._last_submitted, submitted)
            created = _stamp(created_at) or submitted
            qty_dec = Decimal(qty) if qty is not None else None
            notional_dec = Decimal(notional) if notional is not None else None
            if filled_qty is None and status == "filled":
                filled = qty_dec if qty_dec is not None else notional_dec / asset.price
                filled_qty = filled.quantize(QTY_STEP, rounding=ROUND_DOWN)
            filled_dec = Decimal(filled_qty) if filled_qty is not None else ZERO
            avg = Decimal(filled_avg_price) if filled_avg_price is not None else None
            if avg is None and filled_dec:
                avg = asset.price
            if filled_at is None and status == "filled":
                filled_at = submitted
            if canceled_at is None and status == "canceled":
                canceled_at = submitted
            if position_intent is None:
                position_intent = "buy_to_open" if side == "buy" else "sell_to_close"
            filled_stamp = _stamp(filled_at)
            canceled_stamp = _stamp(canceled_at)
            stamps = [submitted, created, filled_stamp, canceled_stamp]
            order = Order(
                id=(order_id or str(uuid.uuid4())).lower(),
                client_order_id=client_order_id or str(uuid.uuid4()),
                asset=asset,
                side=side,
                type=type,
                time_in_force=time_in_force,
                qty=qty_dec,
                notional=notional_dec,
                limit_price=Decimal(limit_price) if limit_price is not None else None,
                stop_price=Decimal(stop_price) if stop_price is not None else None,
                status=status,
                created_at=created,
                submitted_at=submitted,
                updated_at=_stamp(updated_at) or max(s for s in stamps if s is not None),
                seq=self._next_seq(),
                extended_hours=extended_hours,
                filled_qty=filled_dec,
                filled_avg_price=avg,
                filled_at=filled_stamp,
                canceled_at=canceled_stamp,
                position_intent=position_intent,
                fillable=fillable,
            )
            if order.id in self._orders:
                raise ValueError(f"order id {order.id} already used")
            self._index_order(order)
            if move_position and filled_dec:
                signed = filled_dec if side == "buy" else -filled_dec
                self._move_position(asset, signed, avg or asset.price)
                self.cash -= signed * (avg or asset.price)
            return order.snapshot()  # pays the encoding now, not in the first listing

    def set_order_fields(self, ref: str, **fields: object) -> dict[str, object]:
        """Set raw values on an order (by id or client_order_id).

        ``status``, ``side``, ``type``, ``time_in_force``, ``order_class``, ``position_intent`` and
        ``extended_hours`` change the record itself (a new ``status`` also decides whether the
        order counts as open); any other key is served verbatim in the JSON without changing the
        book's logic, and :data:`~brokerops.sim.model.DROP` removes a key.
        """
        with self.lock:
            order = self._find_order(ref)
            for key, value in fields.items():
                if key in ORDER_ATTRIBUTES:
                    setattr(order, key, value)
                else:
                    order.extra[key] = value
            order.touch()
            self._reindex_open(order)
            return order.to_json()

    # ------------------------------------------------------------------ snapshots

    def orders_json(self) -> list[dict[str, object]]:
        """Every order, oldest first, as the API serves it."""
        with self.lock:
            return [order.to_json() for order in self._orders_sorted]

    def find_order_json(self, ref: str) -> dict[str, object] | None:
        """One order by id or client_order_id, or None."""
        with self.lock:
            try:
                return self._find_order(ref).to_json()
            except ApiError:
                return None

    def find_position_json(self, symbol: str) -> dict[str, object] | None:
        """One position by symbol (either crypto spelling) or asset id, or None."""
        with self.lock:
            asset = self.find_asset(symbol)
            if asset is None:
                return None
            position = self._positions.get(asset.id)
            return self._position_json(position) if position is not None else None

    def order_count(self) -> int:
        with self.lock:
            return len(self._orders)


def _stamp(value: datetime | str | int | None) -> int | None:
    """Nanoseconds since the epoch from a datetime (naive: UTC), RFC 3339 text or an int."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return parse_time(value)
    return to_nanos(value)


def _decimal_or(value: Decimal | str | None, default: Decimal) -> Decimal:
    return default if value is None else Decimal(value)
