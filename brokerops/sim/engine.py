"""The paper broker's matching engine: admits new orders, moves every order through its
lifecycle and applies fills to the account as the fill model (``fills.py``) decides them. Not
locked itself: the book calls it under its lock.

Admission checks the :class:`~brokerops.sim.fidelity.Fidelity` rules on submission: crypto
minimums and cash (``crypto_rules``), buying power held by open orders
(``reserve_buying_power``), wash trades (``wash_trade_check``); see ``rules.py``.

Order events: every order transition the engine applies is handed, as it happens and under the
lock, to :attr:`Engine.publisher` (the trade_updates stream, ``stream.py``), with Alpaca's event
name: ``pending_new`` or ``new`` when an order is recorded (``new`` also for an order that rests
``accepted``), ``new`` when a delayed order reaches the market, ``fill``/``partial_fill`` for each
execution (with ``execution_id``, ``price``, ``qty`` and ``position_qty``, the position after it,
net of a crypto fee), ``canceled`` (API, operator, or an ``ioc``/``fok`` that did not cross),
``expired``, ``rejected`` (``Book.reject_order_manually``). Seeding and raw field overrides
publish nothing; ``Book.emit_trade_update`` pushes any event by hand.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_DOWN, Decimal

from . import fills, rules
from .account import Account
from .errors import MSG_DUPLICATE_CLIENT_ORDER_ID, ApiError, invalid, unprocessable
from .fidelity import Policy
from .fills import QTY_STEP, RESTING_STATUSES, ZERO, Delays
from .ledger import Ledger
from .market import Market
from .model import Asset, Order, Position, fmt_decimal, trade_update_json
from .orderbook import OrderBook
from .stamps import Stamps
from .validation import OrderRequest, check_crypto_minimums, check_order_rules

#: Receives each order event: ``(event, order, timestamp_ns, fields)``, called under the book's
#: lock right after the transition (so the order renders as it is then); must not block.
TradeUpdatePublisher = Callable[[str, Order, int, Mapping[str, object]], None]


class Engine:
    """Order admission, lifecycle and fills over the book's market, order book and account."""

    def __init__(
        self,
        *,
        policy: Policy,
        stamps: Stamps,
        market: Market,
        orders: OrderBook,
        account: Account,
        delays: Delays,
        ledger: Ledger,
    ) -> None:
        self._policy = policy
        self._ledger = ledger
        self._stamps = stamps
        self._market = market
        self._orders = orders
        self._account = account
        self._delays = delays
        self._triggered: set[str] = set()
        #: Where order events go (see the module docstring); None: nowhere.
        self.publisher: TradeUpdatePublisher | None = None

    def _publish(self, event: str, order: Order, **fields: str) -> None:
        """Hand an order event to the publisher; its timestamp is the order's ``updated_at``
        (the moment of the transition just applied)."""
        publisher = self.publisher
        if publisher is not None:
            publisher(event, order, order.updated_at, fields)

    def reindex(self, order: Order) -> None:
        """After a status change: a closed order leaves the open index, its stop trigger and
        the fill delay."""
        self._orders.reindex(order)
        if not order.is_open:
            self._triggered.discard(order.id)
            self._delays.drop(order)

    def _set_status(self, order: Order, status: str) -> None:
        order.status = status
        order.updated_at = self._stamps.now()
        order.touch()

    # ------------------------------------------------------------------ admission

    def submit(self, request: OrderRequest) -> Order:
        """``POST /v2/orders`` once the body parsed: Alpaca's checks, record, launch."""
        asset = self._market.find(request.symbol)
        if asset is None:
            raise invalid(f'asset "{request.symbol}" not found')
        if not asset.tradable or asset.status != "active":
            raise unprocessable(f'asset "{asset.symbol}" is not tradable')
        check_order_rules(request, asset)
        if request.client_order_id is not None and self._orders.has_client_id(
            request.client_order_id
        ):
            raise invalid(MSG_DUPLICATE_CLIENT_ORDER_ID)
        fidelity = self._policy.fidelity
        if asset.is_crypto and fidelity.crypto_rules:
            position = self._account.position(asset)
            check_crypto_minimums(
                request,
                asset,
                price=fills.estimated_price(request, asset),
                min_cost=fidelity.crypto_min_cost,
                whole_holding=(
                    request.side == "sell" and position is not None and request.qty == position.qty
                ),
            )
        return self._admit(request, asset)

    def _admit(self, request: OrderRequest, asset: Asset) -> Order:
        """The wash-trade and exposure checks, then the order is recorded and launched."""
        if self._policy.fidelity.wash_trade_check:
            open_orders = self._orders.open_on(asset)
            refusal = rules.wash_trade(request, open_orders) if open_orders else None
            if refusal is not None:
                raise refusal
        intent = self._account.check_exposure(request, asset)
        order = self._record(request, asset, intent)
        self._launch(order)
        return order

    def _record(self, request: OrderRequest, asset: Asset, intent: str) -> Order:
        seq = self._stamps.next_seq()
        submitted, created = self._stamps.submission(seq)
        if not self._policy.auto_fill:
            status = "accepted"
        elif self._policy.fidelity.fill_delay_s > 0:
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
        self._orders.add(order)
        self._publish("pending_new" if status == "pending_new" else "new", order)
        return order

    def _launch(self, order: Order) -> None:
        """Send a new order to the fill model now, or schedule it ``fill_delay_s`` from now."""
        if not self._policy.auto_fill:
            return
        delay = self._policy.fidelity.fill_delay_s
        if delay > 0:
            self._delays.schedule(order, time.monotonic() + delay)
        else:
            self._process_new(order)

    # ------------------------------------------------------------------ reaching the market

    def release_due(self, now: float) -> list[Order]:
        """Send every delayed order due by ``now`` to the fill model, oldest first."""
        due = self._delays.take_due(now)
        for order in due:
            if not order.is_open:
                continue
            if self._policy.auto_fill:
                self._process_new(order)
            elif order.status == "pending_new":
                self._set_status(order, "accepted")
                self._publish("new", order)
        if due:
            self._delays.changed.notify_all()
        return due

    def _process_new(self, order: Order) -> None:
        """The order reaches the market: fill, cancel (``ioc``/``fok``) or rest as ``new``."""
        if order.status == "pending_new":
            self._set_status(order, "new")
            self._publish("new", order)
        price = order.asset.price
        if fills.crosses(order, price, self._triggered):
            self._fill(order, order.remaining_qty(price), price)
        elif order.time_in_force in ("ioc", "fok"):
            self.cancel(order)

    def match_resting(self, asset: Asset) -> list[Order]:
        """Fill the asset's resting orders its current price crosses; returns those filled."""
        filled: list[Order] = []
        for order in sorted(self._orders.open_on(asset), key=lambda o: o.seq):
            if not order.fillable or order.due is not None or order.status not in RESTING_STATUSES:
                continue
            if fills.crosses(order, asset.price, self._triggered):
                remaining = order.remaining_qty(asset.price)
                if remaining > 0 and not self._would_flip(order, remaining):
                    self._fill(order, remaining, asset.price)
                    filled.append(order)
        return filled

    def _would_flip(self, order: Order, qty: Decimal) -> bool:
        """A resting closing order may only close what is still held (never flip the position)."""
        if order.position_intent not in ("sell_to_close", "buy_to_close"):
            return False
        position = self._account.position(order.asset)
        held = position.qty if position is not None else ZERO
        return qty > abs(held) or (order.side == "sell") != (held > 0)

    # ------------------------------------------------------------------ transitions

    def _fill(self, order: Order, qty: Decimal, price: Decimal) -> None:
        """One execution of ``qty`` at ``price``: the order, the position and cash move; a
        ``fill`` or ``partial_fill`` is published."""
        if order.qty is None:
            qty = qty.quantize(QTY_STEP, rounding=ROUND_DOWN)
        if qty <= 0:
            return
        now = self._stamps.now()
        previous = order.filled_qty
        order.filled_avg_price = fills.average(previous, order.filled_avg_price or ZERO, qty, price)
        order.filled_qty = total = previous + qty
        order.updated_at = now
        order.touch()
        if order.qty is None or total >= order.qty:
            order.status = "filled"
            order.filled_at = now
        else:
            order.status = "partially_filled"
        self.reindex(order)
        moved = fills.settlement(order, qty, price, self._policy.fidelity.crypto_fee_bps)
        if moved.position_delta:
            self._account.move_position(order.asset, moved.position_delta, moved.entry_price)
        self._account.cash += moved.cash_delta
        self._ledger.record_fill(order, qty, price, now)
        coin_fee = qty - moved.position_delta if order.side == "buy" else ZERO
        if coin_fee > 0:  # a crypto buy's fee, taken in the coin: a CFEE (ledger.py)
            self._ledger.record_coin_fee(order.asset.position_symbol, coin_fee, price)
        position = self._account.position(order.asset)
        self._publish(
            "fill" if order.status == "filled" else "partial_fill",
            order,
            execution_id=str(uuid.uuid4()),
            price=fmt_decimal(price),
            qty=fmt_decimal(qty),
            position_qty=fmt_decimal(position.qty if position is not None else ZERO),
        )

    def cancel(self, order: Order) -> None:
        """Cancel an open order (the caller checked it is open); publishes ``canceled``."""
        self._close(order, "canceled", "canceled_at")

    def _close(self, order: Order, status: str, stamp_field: str) -> None:
        """End an open order now: ``status``, its time in ``stamp_field`` and ``updated_at``;
        publishes the status as the event."""
        now = self._stamps.now()
        order.status = status
        setattr(order, stamp_field, now)
        order.updated_at = now
        order.touch()
        self.reindex(order)
        self._publish(status, order)

    def fill_order(self, ref: str, qty: Decimal | None, price: Decimal | None) -> Order:
        """Fill an open order by hand (all that remains, or ``qty``), at ``price`` or market."""
        order = self._orders.find(ref)
        if not order.is_open:
            raise ValueError(f"order {order.id} is {order.status}")
        fill_price = Decimal(price) if price is not None else order.asset.price
        remaining = order.remaining_qty(fill_price)
        fill_qty = remaining if qty is None else min(Decimal(qty), remaining)
        self._fill(order, fill_qty, fill_price)
        return order

    def expire_day_orders(self) -> int:
        """End the trading day: open ``day`` orders become ``expired``; returns how many."""
        count = 0
        for order in list(self._orders.open_orders()):
            if order.time_in_force == "day":
                self._close(order, "expired", "expired_at")
                count += 1
        return count

    def cancel_all(self) -> list[dict[str, object]]:
        """``DELETE /v2/orders``: cancel every open order; Alpaca's per-order status list."""
        result: list[dict[str, object]] = []
        for order in list(self._orders.open_orders()):
            self.cancel(order)
            result.append({"id": order.id, "status": 200, "body": None})
        return result

    def reject(self, order: Order) -> None:
        """The venue rejects an open order after accepting it: ``rejected`` with ``failed_at``."""
        self._close(order, "rejected", "failed_at")

    def emit(self, order: Order, event: str, fields: Mapping[str, object]) -> dict[str, object]:
        """Publish ``event`` for an order as it is now, without changing it."""
        at = self._stamps.now()
        if self.publisher is not None:
            self.publisher(event, order, at, fields)
        return trade_update_json(event, order, at, fields)

    # ------------------------------------------------------------------ closing positions

    def close_position(
        self, ref: str, *, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> Order:
        """``DELETE /v2/positions/{symbol_or_asset_id}``: a market order the opposite way."""
        position = self._account.find_position(ref)
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
        return self._admit(_close_request(position, close_qty), position.asset)

    def close_all_positions(self) -> list[dict[str, object]]:
        """``DELETE /v2/positions``: close each position; Alpaca's per-symbol status list."""
        result: list[dict[str, object]] = []
        for position in self._account.positions():
            symbol = position.asset.position_symbol
            try:
                order = self.close_position(position.asset.id).to_json()
            except ApiError as error:
                result.append({"symbol": symbol, "status": error.status, "body": error.body()})
            else:
                result.append(
                    {"symbol": symbol, "status": 200, "order_id": order["id"], "body": order}
                )
        return result

    def close_with_order(self, asset: Asset, position: Position) -> Order:
        """An operator's close: a market order for the whole position, filled at once."""
        request = _close_request(position, abs(position.qty))
        intent = "sell_to_close" if position.qty > 0 else "buy_to_close"
        order = self._record(request, asset, intent)
        self._fill(order, abs(position.qty), asset.price)
        return order

    def match(self, assets: Iterable[Asset]) -> list[Order]:
        """Run the fill model over the resting orders of ``assets``; returns those filled."""
        filled: list[Order] = []
        for asset in assets:
            filled.extend(self.match_resting(asset))
        return filled


def _close_request(position: Position, qty: Decimal) -> OrderRequest:
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
