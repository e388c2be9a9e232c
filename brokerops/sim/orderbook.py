"""The paper broker's order book: every order, indexed by id, client_order_id, submission time
and (while open) asset; the listing and paging of ``GET /v2/orders``. A record keeper only: the
matching engine (``engine.py``) moves orders through their lifecycle. Not locked itself (the
book's lock guards it)."""

from __future__ import annotations

import bisect
import sys
from collections.abc import Iterable, Iterator
from decimal import Decimal

from .errors import MSG_ORDER_NOT_FOUND, not_found
from .model import Asset, Order

ZERO = Decimal(0)


class OrderBook:
    """Orders by id, by client_order_id, sorted by ``submitted_at`` and, while open, by asset."""

    def __init__(self) -> None:
        self._orders: dict[str, Order] = {}
        self._by_client_id: dict[str, Order] = {}
        self._sorted: list[Order] = []
        self._open_by_asset: dict[str, dict[str, Order]] = {}

    # ------------------------------------------------------------------ indexes

    def add(self, order: Order) -> None:
        self._orders[order.id] = order
        self._by_client_id[order.client_order_id] = order
        bisect.insort(self._sorted, order, key=lambda o: o.sort_key)
        if order.is_open:
            self._open_by_asset.setdefault(order.asset.id, {})[order.id] = order

    def reindex(self, order: Order) -> None:
        """Keep the open index in step with ``order.is_open`` after a status change."""
        if order.is_open:
            self._open_by_asset.setdefault(order.asset.id, {})[order.id] = order
            return
        bucket = self._open_by_asset.get(order.asset.id)
        if bucket is not None:
            bucket.pop(order.id, None)
            if not bucket:
                del self._open_by_asset[order.asset.id]

    def repoint(self, old: Asset, new: Asset) -> None:
        """An asset was replaced (``add_asset`` again): its orders now name the new record."""
        for order in self._orders.values():
            if order.asset is old:
                order.asset = new
                order.touch()

    # ------------------------------------------------------------------ lookups

    def get(self, order_id: str) -> Order | None:
        return self._orders.get(order_id.strip().lower())

    def by_client_id(self, client_order_id: str) -> Order | None:
        return self._by_client_id.get(client_order_id)

    def has_id(self, order_id: str) -> bool:
        return order_id in self._orders

    def has_client_id(self, client_order_id: str) -> bool:
        return client_order_id in self._by_client_id

    def find(self, ref: str) -> Order:
        """By order id or client_order_id; 404 ``order not found``."""
        order = self.get(ref) or self._by_client_id.get(ref)
        if order is None:
            raise not_found(MSG_ORDER_NOT_FOUND)
        return order

    def all(self) -> list[Order]:
        """Every order, oldest first."""
        return list(self._sorted)

    def count(self) -> int:
        return len(self._orders)

    def open_on(self, asset: Asset) -> list[Order]:
        """The asset's open orders, in arrival order."""
        bucket = self._open_by_asset.get(asset.id)
        return list(bucket.values()) if bucket else []

    def open_orders(self) -> Iterator[Order]:
        """Every open order (a live view: list it before changing any order's status)."""
        for bucket in self._open_by_asset.values():
            yield from bucket.values()

    def held(self, asset: Asset, side: str) -> Decimal:
        """Unfilled quantity of open ``side`` orders on the asset."""
        orders = self._open_by_asset.get(asset.id)
        if not orders:
            return ZERO
        return sum((o.remaining_qty(asset.price) for o in orders.values() if o.side == side), ZERO)

    # ------------------------------------------------------------------ listing

    def select(
        self,
        *,
        status: str = "open",
        limit: int = 50,
        after: int | None = None,
        until: int | None = None,
        direction: str = "desc",
        symbols: Iterable[str] | None = None,
        side: str | None = None,
    ) -> list[Order]:
        """``GET /v2/orders``' selection; see :meth:`Book.list_orders_json`."""
        wanted = {s.replace("/", "").upper() for s in symbols} if symbols else None
        items = self._sorted
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
