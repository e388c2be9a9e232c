"""The market every account's book trades on (docs/design.md section 16): one set of assets and
prices for the whole paper broker, however many accounts (books) it serves.

A price is the market's, not an account's: :meth:`Venue.set_price` moves it once, revalues the
positions of every book around the move and then runs each book's fill model over its resting
orders; a replaced asset (:meth:`Venue.add_asset` again) is replaced in every book's positions
and orders. The market-data routes read the same market whichever key asks.

Locking: each book has its own lock (one account's traffic never waits for another's) and reads
the shared market under it; a change to the market takes the venue's lock and then every book's
lock, in the order the books were made, so no book reads a market half changed. No book method
calls the venue, and nothing calls the venue while holding a book's lock, so the order holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal

from . import corporate
from .book import Book
from .market import Market
from .stamps import Stamps


class Venue:
    """The shared market and the books trading on it; thread-safe."""

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock
        self.market = Market(Stamps(clock))
        self._lock = threading.Lock()
        self._books: list[Book] = []

    def new_book(self, **options: object) -> Book:
        """A new, empty book (an account) trading on this market; ``options`` are the book's
        (``cash``, ``multiplier``, ``enforce_buying_power``, ``auto_fill``, ``fidelity``)."""
        book = Book(clock=self._clock, market=self.market, **options)  # type: ignore[arg-type]
        with self._lock:
            self._books.append(book)
        return book

    def books(self) -> list[Book]:
        with self._lock:
            return list(self._books)

    @contextmanager
    def _changing(self) -> Iterator[list[Book]]:
        """Hold the venue and every book: the market may change under it."""
        with self._lock, ExitStack() as stack:
            for book in self._books:
                stack.enter_context(book.lock)
            yield list(self._books)

    # ------------------------------------------------------------------ changes to the market

    def add_asset(self, symbol: str, **options: object) -> dict[str, object]:
        """Add or replace an asset (see :meth:`Book.asset_json` for its JSON; the options are
        ``Market.add``'s); a replaced asset's positions and orders move over to the new record
        in every book."""
        with self._changing() as books:
            asset, existing = self.market.add(symbol, **options)  # type: ignore[arg-type]
            if existing is not None:
                for book in books:
                    book.repoint_asset(existing, asset)
            return asset.to_json()

    def set_price(
        self, symbol: str, price: Decimal, *, lastday_price: Decimal | None = None
    ) -> list[dict[str, object]]:
        """Move an asset's price (also its latest trade for market data), revalue every book's
        position in it, then fill the resting orders it crosses in each book (books with
        ``auto_fill`` on); returns the orders filled, book by book."""
        price = Decimal(price)
        if price <= 0:
            raise ValueError("price must be positive")
        with self._changing() as books:
            asset = self.market.get(symbol)
            with ExitStack() as revaluing:
                for book in books:
                    revaluing.enter_context(book.revaluing(asset))
                self.market.move_price(asset, price, lastday_price)
            self.market.record_trade(asset, price)
            return [order for book in books for order in book.match_price(asset)]

    def set_market_data(
        self, symbol: str, price: Decimal | None, **trade: object
    ) -> dict[str, object] | None:
        """The latest trade the market-data routes serve, without moving the fill price;
        ``trade``: its ``size`` and ``at`` (see ``PaperBroker.set_market_data``)."""
        with self._changing():
            return self.market.set_market_data(symbol, price, **trade)  # type: ignore[arg-type]

    def set_asset_fields(self, symbol: str, /, **fields: object) -> dict[str, object]:
        """Raw values: plain attributes change the record, anything else overrides the JSON."""
        with self._changing():
            return self.market.set_fields(symbol, fields)

    def corporate_action(self, kind: str, **terms: object) -> list[dict[str, object]]:
        """Apply a corporate action (``corporate.py``: ``split``, ``merger``, ``name_change``,
        ``spin_off``, ``cash_dividend``) to the market and every book at once; returns the
        activities booked, book by book. ``ValueError`` for unknown kinds or bad terms."""
        with self._changing() as books:
            return corporate.apply(self.market, books, kind, terms)
