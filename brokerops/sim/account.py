"""The paper broker's account: cash, positions and their market value, buying power, what open
orders reserve of it, and the checks a new order must pass against them (held quantity,
shorting, buying power). Not locked itself (the book's lock guards it).

Positions are signed (longs positive, shorts negative); one at zero disappears, and
``avg_entry_price`` is the weighted average of the fills that opened it. Buying power is
Reg-T style: ``equity * multiplier - gross market value``, less what open opening orders hold
under ``fidelity.reserve_buying_power``; under ``fidelity.crypto_rules`` crypto buys are checked
against cash (``non_marginable_buying_power``) instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from . import fills, rules
from .errors import (
    MSG_INSUFFICIENT_BUYING_POWER,
    MSG_POSITION_NOT_FOUND,
    ApiError,
    forbidden,
    not_found,
    unprocessable,
)
from .fidelity import Policy
from .market import Market
from .model import Asset, Position, fmt_decimal, fmt_time, from_nanos
from .orderbook import OrderBook
from .stamps import Stamps
from .validation import OrderRequest

ZERO = Decimal(0)
DEFAULT_CASH = Decimal("1000000")
DEFAULT_MULTIPLIER = Decimal(2)


def _sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


class Account:
    """Cash and positions of one account (one book) the paper broker serves."""

    def __init__(
        self,
        *,
        policy: Policy,
        stamps: Stamps,
        market: Market,
        orders: OrderBook,
        cash: Decimal = DEFAULT_CASH,
        multiplier: Decimal = DEFAULT_MULTIPLIER,
    ) -> None:
        self._policy = policy
        self._stamps = stamps
        self._market = market
        self._orders = orders
        self.cash = Decimal(cash)
        self.multiplier = Decimal(multiplier)
        self.account_id = str(uuid.uuid4())
        self.account_number = "PA" + uuid.uuid4().hex[:10].upper()
        self.created_at = stamps.clock()
        self._positions: dict[str, Position] = {}
        self._long_value = ZERO
        self._short_value = ZERO

    # ------------------------------------------------------------------ market value

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

    @contextmanager
    def revaluing(self, asset: Asset) -> Iterator[None]:
        """Around a change of the asset's price: the position's market value follows it."""
        position = self._positions.get(asset.id)
        if position is not None:
            self._unbook_value(position)
        yield
        if position is not None:
            self._book_value(position)

    def repoint(self, old: Asset, new: Asset) -> None:
        """An asset was replaced (``add_asset`` again): its position now values the new one."""
        position = self._positions.get(old.id)
        if position is not None:
            self._unbook_value(position)
            position.asset = new
            self._book_value(position)

    # ------------------------------------------------------------------ money

    def equity(self) -> Decimal:
        return self.cash + self._long_value + self._short_value

    def reserved(self) -> Decimal:
        """Buying power held by open opening orders (0 unless ``reserve_buying_power``)."""
        if not self._policy.fidelity.reserve_buying_power:
            return ZERO
        return rules.reserved_value(self._orders.open_orders())

    def buying_power(self) -> Decimal:
        """``equity * multiplier - gross market value - reserved``; never below zero."""
        gross = self._long_value - self._short_value
        return max(ZERO, self.equity() * self.multiplier - gross - self.reserved())

    def non_marginable_buying_power(self) -> Decimal:
        """Cash for what cannot be bought on margin (crypto), less what open orders reserve;
        never below zero."""
        return max(ZERO, self.cash - self.reserved())

    def account_json(self) -> dict[str, object]:
        """``GET /v2/account``."""
        equity = self.equity()
        buying_power = self.buying_power()
        cash_power = self.non_marginable_buying_power()
        long_value, short_value = self._long_value, self._short_value
        gross = long_value - short_value
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
            "cash": fmt_decimal(self.cash),
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
            "initial_margin": fmt_decimal(gross / 2),
            "maintenance_margin": fmt_decimal(gross * Decimal("0.3")),
            "last_maintenance_margin": fmt_decimal(gross * Decimal("0.3")),
            "sma": fmt_decimal(equity),
            "daytrade_count": 0,
            "balance_asof": from_nanos(self._stamps.clock()).date().isoformat(),
            "crypto_tier": 1,
            "intraday_adjustments": "0",
            "pending_reg_taf_fees": "0",
        }

    # ------------------------------------------------------------------ positions

    def position(self, asset: Asset) -> Position | None:
        return self._positions.get(asset.id)

    def positions(self) -> list[Position]:
        return list(self._positions.values())

    def position_json(self, position: Position) -> dict[str, object]:
        closing_side = "sell" if position.qty > 0 else "buy"
        return position.to_json(self._orders.held(position.asset, closing_side))

    def positions_json(self) -> list[dict[str, object]]:
        """``GET /v2/positions``: every open position."""
        return [self.position_json(p) for p in self._positions.values()]

    def find_position(self, ref: str) -> Position:
        """By position symbol (``BTCUSD``, ``AAPL``) or asset id; ``BTC/USD`` never matches;
        404 ``position does not exist``."""
        ref = ref.strip()
        if "/" in ref:
            raise not_found(MSG_POSITION_NOT_FOUND)
        asset = self._market.find(ref)
        position = self._positions.get(asset.id) if asset is not None else None
        if position is None:
            raise not_found(MSG_POSITION_NOT_FOUND)
        return position

    def seed_position(
        self, asset: Asset, qty: Decimal, avg_entry_price: Decimal | None
    ) -> dict[str, object] | None:
        """Set a position outright (no order, cash unchanged); ``qty`` 0 removes it."""
        existing = self._positions.pop(asset.id, None)
        if existing is not None:
            self._unbook_value(existing)
        if not qty:
            return None
        avg = Decimal(avg_entry_price) if avg_entry_price is not None else asset.price
        position = Position(asset=asset, qty=qty, avg_entry_price=avg)
        self._positions[asset.id] = position
        self._book_value(position)
        return self.position_json(position)

    def drop_position(self, asset: Asset) -> None:
        """The asset's position disappears without an order (an operator's manual close)."""
        self._unbook_value(self._positions.pop(asset.id))

    def move_position(self, asset: Asset, delta: Decimal, price: Decimal) -> None:
        """A fill of ``delta`` (signed) at ``price``: grow, shrink, close or open the position."""
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
            position.avg_entry_price = fills.average(
                old_qty, position.avg_entry_price, delta, price
            )
        position.qty = new_qty
        self._book_value(position)

    # ------------------------------------------------------------------ checks on a new order

    def check_exposure(self, request: OrderRequest, asset: Asset) -> str:
        """Held quantity, shorting and buying power; returns the ``position_intent``."""
        qty = fills.estimated_qty(request, asset)
        position = self._positions.get(asset.id)
        held_qty = position.qty if position is not None else ZERO
        closing = (request.side == "sell" and held_qty > 0) or (
            request.side == "buy" and held_qty < 0
        )
        if closing:
            held_for_orders = self._orders.held(asset, request.side)
            available = max(abs(held_qty) - held_for_orders, ZERO)
            if qty > available:
                raise _insufficient(asset, qty, available, abs(held_qty), held_for_orders)
            return "sell_to_close" if request.side == "sell" else "buy_to_close"
        if request.side == "sell":
            if asset.is_crypto:
                raise _insufficient(asset, qty, ZERO, abs(held_qty), ZERO)
            if not asset.shortable or not asset.easy_to_borrow:
                raise unprocessable(f'asset "{asset.symbol}" cannot be sold short')
            if request.is_fractional:
                raise unprocessable("fractional orders cannot be sold short")
        if self._policy.enforce_buying_power:
            self._check_cost(request, asset, qty)
        return "buy_to_open" if request.side == "buy" else "sell_to_open"

    def _check_cost(self, request: OrderRequest, asset: Asset, qty: Decimal) -> None:
        """403 when the order costs more than the buying power (crypto under ``crypto_rules``:
        than the cash)."""
        cost = (
            request.notional
            if request.notional is not None
            else qty * fills.estimated_price(request, asset)
        )
        if asset.is_crypto and self._policy.fidelity.crypto_rules:
            cash_power = self.non_marginable_buying_power()
            if cost > cash_power:
                quote = asset.symbol.split("/")[1] if "/" in asset.symbol else "USD"
                shown = f"requested: {fmt_decimal(cost)}, available: {fmt_decimal(cash_power)}"
                raise forbidden(
                    f"insufficient balance for {quote} ({shown})",
                    available=fmt_decimal(cash_power),
                    balance=fmt_decimal(max(self.cash, ZERO)),
                )
            return
        buying_power = self.buying_power()
        if cost > buying_power:
            raise forbidden(
                MSG_INSUFFICIENT_BUYING_POWER,
                buying_power=fmt_decimal(buying_power),
                cost_basis=fmt_decimal(cost),
            )


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
