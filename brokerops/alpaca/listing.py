"""A bulk read of orders kept lean: :class:`OrderSummaries`.

A reconciliation over 200,000 orders compares a few fields of each, and needs the whole order
(``Order.raw`` included, for an audit payload) only for the handful a repair touches. Holding
every order's decoded JSON object costs about 2 KB an order; here each order is an
:class:`~brokerops.alpaca.types.OrderSummary`, and each page's body is kept as the bytes that
arrived (about 0.8 KB an order), decoded again when a whole order is asked for.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, overload

from .parsing.orders import parse_orders
from .types import Order, OrderSummary

# A stored row seen as an OrderSummary (a C-level call: no Python frame per order).
_as_summary = partial(tuple.__new__, OrderSummary)


class PageBody:
    """One page's body as received, and the charset requests decoded it with."""

    __slots__ = ("content", "encoding")

    def __init__(self, content: bytes, encoding: str | None) -> None:
        self.content = content
        self.encoding = encoding

    def rows(self) -> Any:
        """The body decoded again, exactly as the first time (by requests' ``Response.json``)."""
        import requests  # loaded by the gateway already; not when the apps load

        response = requests.Response()
        response._content = self.content
        response.encoding = self.encoding
        return response.json()


class OrderSummaries(Sequence[OrderSummary]):
    """Orders from one bulk read, in the order the read kept them (oldest first, each once).

    A sequence of :class:`~brokerops.alpaca.types.OrderSummary`; :meth:`order` gives the whole
    :class:`~brokerops.alpaca.types.Order` (with ``raw``) of any of them, parsed from its page's
    body when first asked for, and :meth:`by_client_order_id` a map to whole orders built the
    same way. Meant for one caller at a time (two threads asking at once only decode twice).
    """

    def __init__(self) -> None:
        # Plain tuples (an OrderSummary's fields): the garbage collector stops tracking a plain
        # tuple of strings and decimals, never a tuple subclass, and 200,000 tracked objects
        # would make every full collection of the process slower for as long as they live.
        self._summaries: list[tuple[Any, ...]] = []
        self._bodies: list[PageBody] = []
        self._page_of = array("I")  # summary index -> index in _bodies
        self._position_of = array("I")  # summary index -> position in its page
        self._orders: dict[int, Order] = {}
        self._decoded: tuple[int, Any] | None = None  # the last page decoded again

    def add_page(self, body: PageBody, fields: Sequence[tuple[Any, ...]], positions: list[int]):
        """Keep ``fields[p]`` (an :class:`OrderSummary`'s fields, as a plain tuple) for each
        position ``p`` in ``positions`` (the orders of this page not seen before), with ``body``
        to rebuild the whole orders from."""
        page = len(self._bodies)
        self._bodies.append(body)
        for position in positions:
            self._summaries.append(fields[position])
            self._page_of.append(page)
            self._position_of.append(position)

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> OrderSummaries:
        """Orders kept as received (``Order.raw`` of each) read again as one page, parsed and
        checked as a listing's page is: what a reconciliation carries from one run to the next
        of orders that can no longer change (final at the broker)."""
        import json

        from .parsing.summaries import parse_order_summary_fields

        summaries = cls()
        fields, _stamps = parse_order_summary_fields(rows)
        body = PageBody(json.dumps(rows).encode(), "utf-8")
        summaries.add_page(body, fields, list(range(len(fields))))
        return summaries

    def extend_from(self, source: OrderSummaries, indexes: Iterable[int]) -> None:
        """Append ``source``'s orders at ``indexes``, in that order, sharing their pages' bodies
        (several reads merged into one list: an incremental reconciliation's)."""
        pages: dict[int, int] = {}
        for index in indexes:
            page = source._page_of[index]
            mine = pages.get(page)
            if mine is None:
                mine = pages[page] = len(self._bodies)
                self._bodies.append(source._bodies[page])
            self._summaries.append(source._summaries[index])
            self._page_of.append(mine)
            self._position_of.append(source._position_of[index])
            if (order := source._orders.get(index)) is not None:
                self._orders[len(self._summaries) - 1] = order

    def __len__(self) -> int:
        return len(self._summaries)

    @overload
    def __getitem__(self, index: int) -> OrderSummary: ...

    @overload
    def __getitem__(self, index: slice) -> list[OrderSummary]: ...

    def __getitem__(self, index: int | slice) -> OrderSummary | list[OrderSummary]:
        if isinstance(index, slice):
            return list(map(_as_summary, self._summaries[index]))
        return _as_summary(self._summaries[index])

    def __iter__(self) -> Iterator[OrderSummary]:
        return map(_as_summary, self._summaries)

    def order(self, index: int) -> Order:
        """The whole order behind ``self[index]`` (the same object on every call)."""
        index = range(len(self._summaries))[index]  # negative indexes; IndexError when out
        order = self._orders.get(index)
        if order is None:
            page = self._page_of[index]
            decoded = self._decoded
            if decoded is None or decoded[0] != page:
                decoded = self._decoded = (page, self._bodies[page].rows())
            (order,) = parse_orders([decoded[1][self._position_of[index]]])
            self._orders[index] = order
        return order

    def by_client_order_id(self) -> Mapping[str, Order]:
        """Whole orders by client_order_id (the later one wins, as in a dict built from the
        list), each parsed when first looked up."""
        return _OrdersByClientId(self, {s[1]: i for i, s in enumerate(self._summaries)})


class _OrdersByClientId(Mapping[str, Order]):
    def __init__(self, summaries: OrderSummaries, index: dict[str, int]) -> None:
        self._summaries = summaries
        self._index = index

    def __getitem__(self, client_order_id: str) -> Order:
        return self._summaries.order(self._index[client_order_id])

    def __contains__(self, client_order_id: object) -> bool:
        return client_order_id in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)
