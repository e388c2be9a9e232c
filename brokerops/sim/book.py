"""The paper broker's book: one facade over its parts, and the one lock that guards them.

- ``market.py``: assets, prices, the latest trades the market-data endpoints serve (one market
  for every book of the paper broker: ``venue.py`` changes it, the book reads it);
- ``orderbook.py``: every order and its indexes, the listing and paging of ``GET /v2/orders``;
- ``account.py``: cash, positions, buying power and what open orders reserve of it, the
  exposure checks of a new order;
- ``fills.py``: the fill model (when and at what price an order executes, crypto fees, the
  fill delay);
- ``engine.py``: the matching engine (admission, the order lifecycle, fills applied, the order
  events published);
- ``seeding.py``: orders recorded without validation; ``stamps.py``: time and ids.

A book is one account's. One re-entrant lock guards everything in it (the shared market changes
only under every book's lock: ``venue.py``); every public method of :class:`Book` takes it, so
the HTTP threads and a test's Python handle can call in at once. The parts never lock: reach them
(``book.account``, ``book.engine``, ...) only under ``book.lock``. Methods that serve the API
return the JSON Alpaca would send (``dict``/``list``) and raise
:class:`~brokerops.sim.errors.ApiError` with Alpaca's status, code and message.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal

from .account import DEFAULT_CASH, DEFAULT_MULTIPLIER, Account
from .engine import Engine, TradeUpdatePublisher
from .errors import MSG_ORDER_NOT_FOUND, ApiError, not_found, unprocessable
from .fidelity import LENIENT, Fidelity, Policy
from .fills import Delays
from .ledger import Ledger
from .market import Market
from .model import Asset
from .orderbook import OrderBook
from .seeding import SeedOrder
from .stamps import Stamps, stamp
from .validation import parse_order_request

#: Plain attributes ``set_order_fields`` changes on the record itself (and so in the book's logic).
ORDER_ATTRIBUTES = frozenset(
    {"status", "side", "type", "time_in_force", "order_class", "position_intent", "extended_hours"}
)


class Book:
    """All state of the paper broker. Thread-safe; the fill model is documented in ``fills.py``."""

    def __init__(
        self,
        *,
        cash: Decimal = DEFAULT_CASH,
        multiplier: Decimal = DEFAULT_MULTIPLIER,
        enforce_buying_power: bool = True,
        auto_fill: bool = True,
        fidelity: Fidelity = LENIENT,
        clock: Callable[[], int] = time.time_ns,
        market: Market | None = None,
    ) -> None:
        self.lock = threading.RLock()
        #: Notified whenever delayed orders are scheduled or released (see :meth:`settle`).
        self.changed = threading.Condition(self.lock)
        self.policy = Policy(fidelity, auto_fill, enforce_buying_power)
        self.stamps = Stamps(clock)
        #: Shared with every book of the paper broker (``venue.py`` changes it); a book of its
        #: own without one.
        self.market = Market(self.stamps) if market is None else market
        self.orders = OrderBook()
        self.account = Account(
            policy=self.policy,
            stamps=self.stamps,
            market=self.market,
            orders=self.orders,
            cash=cash,
            multiplier=multiplier,
        )
        self.delays = Delays(self.changed)
        self.ledger = Ledger(self.stamps)
        #: The venue's corporate actions (``Venue.corporate_action``), for the control endpoint.
        self.corporate_actions: Callable[..., list[dict[str, object]]] | None = None
        self.engine = Engine(
            policy=self.policy,
            stamps=self.stamps,
            market=self.market,
            orders=self.orders,
            account=self.account,
            delays=self.delays,
            ledger=self.ledger,
        )

    # ------------------------------------------------------------------ settings and identity

    @property
    def fidelity(self) -> Fidelity:
        return self.policy.fidelity

    @fidelity.setter
    def fidelity(self, value: Fidelity) -> None:
        self.policy.fidelity = value

    @property
    def auto_fill(self) -> bool:
        return self.policy.auto_fill

    @auto_fill.setter
    def auto_fill(self, value: bool) -> None:
        self.policy.auto_fill = value

    @property
    def publisher(self) -> TradeUpdatePublisher | None:
        """Where order events go (see the module docstring); None: nowhere."""
        return self.engine.publisher

    @publisher.setter
    def publisher(self, value: TradeUpdatePublisher | None) -> None:
        self.engine.publisher = value

    # ------------------------------------------------------------------ assets and prices

    def repoint_asset(self, old: Asset, new: Asset) -> None:
        """An asset was replaced in the market (``Venue.add_asset`` again): its position and
        orders in this book move over to the new record."""
        with self.lock:
            self.account.repoint(old, new)
            self.orders.repoint(old, new)

    def find_asset(self, ref: str) -> Asset | None:
        """The asset for a symbol (``BTC/USD`` or ``BTCUSD``, any case) or an asset id."""
        with self.lock:
            return self.market.find(ref)

    def asset_json(self, ref: str) -> dict[str, object]:
        """``GET /v2/assets/{symbol_or_id}``; 404 when unknown."""
        with self.lock:
            return self.market.asset_json(ref)

    def assets_json(
        self, *, status: str | None = None, asset_class: str | None = None
    ) -> list[dict[str, object]]:
        """``GET /v2/assets`` with Alpaca's ``status`` and ``asset_class`` filters."""
        with self.lock:
            return self.market.assets_json(status=status, asset_class=asset_class)

    @contextmanager
    def revaluing(self, asset: Asset) -> Iterator[None]:
        """Around a move of the asset's price (``Venue.set_price``): the position follows it."""
        with self.lock, self.account.revaluing(asset):
            yield

    def match_price(self, asset: Asset) -> list[dict[str, object]]:
        """After the asset's price moved: fill the resting orders it crosses (none with
        ``auto_fill`` off); returns them."""
        with self.lock:
            if not self.policy.auto_fill:
                return []
            return [order.to_json() for order in self.engine.match_resting(asset)]

    def price(self, symbol: str) -> Decimal:
        """The asset's current price."""
        with self.lock:
            return self.market.get(symbol).price

    def latest_trades_json(
        self, symbols: Iterable[str], *, crypto: bool, feed: str = "sip"
    ) -> dict[str, object]:
        """The market-data latest trades of ``symbols`` (see ``marketdata.py``): symbols are
        matched as the asset is written (``BTC/USD``, any case); unknown ones are left out."""
        with self.lock:
            return self.market.latest_trades_json(symbols, crypto=crypto, feed=feed)

    # ------------------------------------------------------------------ account and positions

    def set_cash(self, cash: Decimal) -> None:
        with self.lock:
            self.account.cash = Decimal(cash)

    def account_json(self) -> dict[str, object]:
        """``GET /v2/account``."""
        with self.lock:
            return self.account.account_json()

    def positions_json(self) -> list[dict[str, object]]:
        """``GET /v2/positions``: every open position."""
        with self.lock:
            return self.account.positions_json()

    def position_json(self, ref: str) -> dict[str, object]:
        """``GET /v2/positions/{symbol_or_asset_id}``; 404 ``position does not exist``."""
        with self.lock:
            return self.account.position_json(self.account.find_position(ref))

    def find_position_json(self, symbol: str) -> dict[str, object] | None:
        """One position by symbol (either crypto spelling) or asset id, or None."""
        with self.lock:
            asset = self.market.find(symbol)
            position = self.account.position(asset) if asset is not None else None
            return self.account.position_json(position) if position is not None else None

    def seed_position(
        self, symbol: str, qty: Decimal, avg_entry_price: Decimal | None = None
    ) -> dict[str, object] | None:
        """Set a position outright (no order, cash unchanged); ``qty`` 0 removes it."""
        with self.lock:
            asset = self.market.get(symbol)
            return self.account.seed_position(asset, Decimal(qty), avg_entry_price)

    def set_position_fields(self, symbol: str, /, **fields: object) -> dict[str, object]:
        """Override keys of a position's JSON (raw values; :data:`DROP` removes a key)."""
        with self.lock:
            position = self.account.find_position(self.market.get(symbol).position_symbol)
            position.extra.update(fields)
            return self.account.position_json(position)

    def close_position(
        self, ref: str, *, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> dict[str, object]:
        """``DELETE /v2/positions/{symbol_or_asset_id}``: a market order the opposite way."""
        with self.lock:
            return self.engine.close_position(ref, qty=qty, percentage=percentage).to_json()

    def close_all_positions(self, *, cancel_orders: bool = False) -> list[dict[str, object]]:
        """``DELETE /v2/positions``: close each position; Alpaca's per-symbol status list."""
        with self.lock:
            if cancel_orders:
                self.engine.cancel_all()
            return self.engine.close_all_positions()

    def close_position_manually(
        self, symbol: str, *, with_order: bool = True
    ) -> dict[str, object] | None:
        """Close a whole position as an operator would in the dashboard.

        With ``with_order`` (default) a filled market order (a client_order_id this system never
        made) records the trade and moves cash; without it the position just disappears. Returns
        the order's JSON, or None. Open orders on the symbol stay open.
        """
        with self.lock:
            asset = self.market.get(symbol)
            position = self.account.position(asset)
            if position is None:
                raise KeyError(f"no position in {symbol}")
            if not with_order:
                self.account.drop_position(asset)
                return None
            return self.engine.close_with_order(asset, position).to_json()

    # ------------------------------------------------------------------ orders: the API

    def submit_order(self, body: object) -> dict[str, object]:
        """``POST /v2/orders``: validate like Alpaca, record, then the fill model (at once, or
        after ``fidelity.fill_delay_s``: the answer is then ``pending_new``)."""
        request = parse_order_request(body)
        with self.lock:
            return self.engine.submit(request).to_json()

    def order_json(self, order_id: str) -> dict[str, object]:
        """``GET /v2/orders/{order_id}``; 404 ``order not found``."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                raise not_found(MSG_ORDER_NOT_FOUND)
            return order.to_json()

    def order_by_client_id_json(self, client_order_id: str) -> dict[str, object]:
        """``GET /v2/orders:by_client_order_id``; 404 ``order not found``."""
        with self.lock:
            order = self.orders.by_client_id(client_order_id)
            if order is None:
                raise not_found(MSG_ORDER_NOT_FOUND)
            return order.to_json()

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
            orders = self.orders.select(
                status=status,
                limit=limit,
                after=stamp(after),
                until=stamp(until),
                direction=direction,
                symbols=symbols,
                side=side,
            )
            return [order.to_json() for order in orders]

    def list_orders_bytes(self, **filters: object) -> bytes:
        """:meth:`list_orders_json` already encoded as a JSON array (the HTTP fast path)."""
        with self.lock:
            orders = self.orders.select(**filters)  # type: ignore[arg-type]
            return b"[" + b",".join(order.raw_json() for order in orders) + b"]"

    def cancel_order(self, order_id: str) -> None:
        """``DELETE /v2/orders/{order_id}``: 404 when unknown, 422 when no longer open."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                raise not_found(MSG_ORDER_NOT_FOUND)
            if not order.is_open:
                raise unprocessable(f'order is already in "{order.status}" state')
            self.engine.cancel(order)

    def cancel_all_orders(self) -> list[dict[str, object]]:
        """``DELETE /v2/orders``: cancel every open order; Alpaca's per-order status list."""
        with self.lock:
            return self.engine.cancel_all()

    # ------------------------------------------------------------------ orders: the fill delay

    def next_due(self) -> float | None:
        """``time.monotonic()`` at which the next delayed order reaches the market, or None."""
        with self.lock:
            return self.delays.next_due()

    def pending_count(self) -> int:
        """Orders still waiting out the fill delay."""
        with self.lock:
            return self.delays.count()

    def release_due(self, now: float | None = None) -> list[dict[str, object]]:
        """Send every delayed order whose time has come (``now``: ``time.monotonic()``) to the
        fill model, oldest first; returns them as served afterwards."""
        with self.lock:
            now = time.monotonic() if now is None else now
            return [order.to_json() for order in self.engine.release_due(now)]

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

    # ------------------------------------------------------------------ orders: by hand

    def fill_order(
        self, ref: str, qty: Decimal | None = None, price: Decimal | None = None
    ) -> dict[str, object]:
        """Fill an open order by hand (all that remains, or ``qty``), at ``price`` or market."""
        with self.lock:
            return self.engine.fill_order(ref, qty, price).to_json()

    def match_orders(self, symbol: str | None = None) -> list[dict[str, object]]:
        """Run the fill model over resting orders (of one symbol or all); returns those filled."""
        with self.lock:
            assets = [self.market.get(symbol)] if symbol else self.market.assets()
            return [order.to_json() for order in self.engine.match(assets)]

    def expire_day_orders(self) -> int:
        """End the trading day: open ``day`` orders become ``expired``; returns how many."""
        with self.lock:
            return self.engine.expire_day_orders()

    def cancel_order_manually(self, ref: str) -> dict[str, object]:
        """Cancel by order id or client_order_id, as an operator would in the dashboard."""
        with self.lock:
            order = self.orders.find(ref)
            if not order.is_open:
                raise ValueError(f"order {order.id} is {order.status}, not open")
            self.engine.cancel(order)
            return order.to_json()

    def reject_order_manually(self, ref: str) -> dict[str, object]:
        """Reject an open order after it was accepted, as the venue may (by id or
        client_order_id): ``rejected`` with ``failed_at``; publishes ``rejected``."""
        with self.lock:
            order = self.orders.find(ref)
            if not order.is_open:
                raise ValueError(f"order {order.id} is {order.status}, not open")
            self.engine.reject(order)
            return order.to_json()

    def emit_trade_update(self, ref: str, event: str, **fields: object) -> dict[str, object]:
        """Publish ``event`` for an order as it is now, without changing it (events the book
        does not model: ``replaced``, ``done_for_day``, ...); ``fields`` are added to the
        event's data. Returns the data as pushed."""
        with self.lock:
            return self.engine.emit(self.orders.find(ref), event, fields)

    # ------------------------------------------------------------------ seeding and raw fields

    def seed_order(
        self, symbol: str, qty: Decimal | None = None, side: str = "buy", **fields: object
    ) -> dict[str, object]:
        """Record an order without validation or HTTP (fast: 20,000 in well under a second);
        the keywords and their defaults are :class:`~brokerops.sim.seeding.SeedOrder`'s.
        Raises ``ValueError`` for a reused client_order_id or order id."""
        spec = SeedOrder(qty=qty, side=side, **fields)  # type: ignore[arg-type]
        with self.lock:
            asset = self.market.get(symbol)
            if spec.client_order_id is not None and self.orders.has_client_id(spec.client_order_id):
                raise ValueError(f"client_order_id {spec.client_order_id!r} already used")
            if qty is None and spec.notional is None:
                raise ValueError("qty or notional is required")
            order = spec.build(asset, self.stamps)
            if self.orders.has_id(order.id):
                raise ValueError(f"order id {order.id} already used")
            self.orders.add(order)
            if spec.move_position and order.filled_qty:
                price = order.filled_avg_price or asset.price
                signed = order.filled_qty if side == "buy" else -order.filled_qty
                self.account.move_position(asset, signed, price)
                self.account.cash -= signed * price
            return order.snapshot()  # pays the encoding now, not in the first listing

    def set_order_fields(self, ref: str, **fields: object) -> dict[str, object]:
        """Set raw values on an order (by id or client_order_id).

        ``status``, ``side``, ``type``, ``time_in_force``, ``order_class``, ``position_intent`` and
        ``extended_hours`` change the record itself (a new ``status`` also decides whether the
        order counts as open); any other key is served verbatim in the JSON without changing the
        book's logic, and :data:`~brokerops.sim.model.DROP` removes a key.
        """
        with self.lock:
            order = self.orders.find(ref)
            for key, value in fields.items():
                if key in ORDER_ATTRIBUTES:
                    setattr(order, key, value)
                else:
                    order.extra[key] = value
            order.touch()
            self.engine.reindex(order)
            return order.to_json()

    # ------------------------------------------------------------------ snapshots

    def orders_json(self) -> list[dict[str, object]]:
        """Every order, oldest first, as the API serves it."""
        with self.lock:
            return [order.to_json() for order in self.orders.all()]

    def find_order_json(self, ref: str) -> dict[str, object] | None:
        """One order by id or client_order_id, or None."""
        with self.lock:
            try:
                return self.orders.find(ref).to_json()
            except ApiError:
                return None

    def order_count(self) -> int:
        with self.lock:
            return self.orders.count()
