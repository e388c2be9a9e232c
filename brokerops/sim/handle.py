"""What the Python handle can do to one account (docs/design.md section 16): seed and read its
book, drive its fills, inject its faults, and watch its trade_updates connections.

:class:`AccountMethods` is shared by :class:`~brokerops.sim.broker.PaperBroker`, whose own
methods address the broker's first account (the keys it was made with, ``test-key`` /
``test-secret`` by default), and :class:`AccountHandle`, which ``PaperBroker.add_account``
returns for each account added. The stream methods here count and act on the handle's account
only; the broker's count and act on every account's connections.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .book import Book
from .faults import (
    FaultConfig,
    FaultEvent,
    FaultInjector,
    FaultKind,
    StreamFaultConfig,
    StreamFaultEvent,
    StreamFaultKind,
)
from .keyring import PaperAccount
from .stream import StreamHub

if TYPE_CHECKING:
    from .broker import PaperBroker


class AccountMethods:
    """One account's book, faults and stream; the class using it sets ``_paper`` (the account)
    and ``stream`` (the broker's hub) and says which connections its stream methods see."""

    _paper: PaperAccount
    stream: StreamHub

    def _scope(self) -> PaperAccount | None:
        """The account whose stream connections the stream methods see (None: every one)."""
        return self._paper

    @property
    def book(self) -> Book:
        """The account's :class:`~brokerops.sim.book.Book`, a facade over its order book, its
        account, the fill model (``fills.py``) and the matching engine, on the shared market."""
        return self._paper.book

    @property
    def faults(self) -> FaultInjector:
        """The account's HTTP faults (requests with its keys)."""
        return self._paper.faults

    # ------------------------------------------------------------------ positions, orders, cash

    def seed_position(
        self,
        symbol: str,
        qty: Decimal | str | int,
        avg_entry_price: Decimal | str | int | None = None,
    ) -> dict[str, object] | None:
        """Set a position outright (signed qty; 0 removes); no order, cash unchanged."""
        avg = Decimal(avg_entry_price) if avg_entry_price is not None else None
        return self.book.seed_position(symbol, Decimal(qty), avg)

    def seed_order(self, symbol: str, qty: object = None, side: str = "buy", **fields: object):
        """Record an order without HTTP or validation; see :meth:`Book.seed_order`."""
        return self.book.seed_order(symbol, qty, side, **fields)  # type: ignore[arg-type]

    def fill_order(
        self, ref: str, qty: Decimal | str | None = None, price: Decimal | str | None = None
    ) -> dict[str, object]:
        """Fill an open order (by id or client_order_id) by hand, in part or in full."""
        return self.book.fill_order(
            ref,
            Decimal(qty) if qty is not None else None,
            Decimal(price) if price is not None else None,
        )

    def match_orders(self, symbol: str | None = None) -> list[dict[str, object]]:
        """Run the fill model over resting orders now (after ``set_auto_fill(True)``)."""
        return self.book.match_orders(symbol)

    def set_auto_fill(self, enabled: bool) -> None:
        """Off: new orders rest as ``accepted`` and nothing fills until :meth:`fill_order`."""
        with self.book.lock:
            self.book.auto_fill = enabled

    def settle(self, timeout: float | None = 5.0) -> bool:
        """Wait until every order placed under ``fill_delay_s`` has reached the fill model
        (filled, or resting/canceled as its type says); False if ``timeout`` passes first.
        Works whether or not the broker is running."""
        return self.book.settle(timeout)

    def release_pending(self) -> list[dict[str, object]]:
        """Send every order still waiting out the fill delay to the fill model now (no waiting);
        returns them as served afterwards."""
        return self.book.release_pending()

    def pending_count(self) -> int:
        """Orders still waiting out the fill delay (``pending_new``)."""
        return self.book.pending_count()

    def expire_day_orders(self) -> int:
        """End of day: open ``day`` orders become ``expired``."""
        return self.book.expire_day_orders()

    def cancel_order_manually(self, ref: str) -> dict[str, object]:
        """Cancel an open order (by id or client_order_id) as an operator would."""
        return self.book.cancel_order_manually(ref)

    def reject_order_manually(self, ref: str) -> dict[str, object]:
        """Reject an open order after its acceptance, as the venue may (stream: ``rejected``)."""
        return self.book.reject_order_manually(ref)

    def emit_trade_update(self, ref: str, event: str, **fields: object) -> dict[str, object]:
        """Push ``event`` (e.g. ``replaced``, ``done_for_day``) for an order as it is now,
        ``fields`` added to the data; the order is not changed. Returns the data as pushed."""
        return self.book.emit_trade_update(ref, event, **fields)

    def close_position_manually(
        self, symbol: str, *, with_order: bool = True
    ) -> dict[str, object] | None:
        """Close a whole position outside the API (with a filled order unless told not to)."""
        return self.book.close_position_manually(symbol, with_order=with_order)

    def activities(self) -> list[dict[str, object]]:
        """Every activity booked (``ledger.py``), oldest first, as the API serves them."""
        with self.book.lock:
            return self.book.ledger.rows()

    def hold_activity(self, activity_id: str) -> dict[str, object]:
        """Take one posted activity back as not posted yet (``ledger.py``): a corporate action's
        second leg arriving later; :meth:`post_crypto_fees` (the end of the day) posts it."""
        with self.book.lock:
            return self.book.ledger.hold(activity_id)

    def post_crypto_fees(self) -> list[dict[str, object]]:
        """The simulated end of the day: the crypto fees held are booked as ``CFEE`` now."""
        with self.book.lock:
            return self.book.ledger.post_held()

    def set_crypto_fees_at_once(self, enabled: bool) -> None:
        """Book each crypto buy's ``CFEE`` with its fill instead of at the end of the day."""
        with self.book.lock:
            self.book.ledger.fees_at_once = enabled

    def set_cash(self, cash: Decimal | str | int) -> None:
        self.book.set_cash(Decimal(cash))

    def orders(self) -> list[dict[str, object]]:
        """Every order, oldest first, as the API would serve it."""
        return self.book.orders_json()

    def order(self, ref: str) -> dict[str, object] | None:
        """One order by id or client_order_id, or None."""
        return self.book.find_order_json(ref)

    def positions(self) -> list[dict[str, object]]:
        """Every open position as ``GET /v2/positions`` serves it."""
        return self.book.positions_json()

    def position(self, symbol: str) -> dict[str, object] | None:
        """One position by symbol (``BTC/USD`` or ``BTCUSD``) or asset id, or None."""
        return self.book.find_position_json(symbol)

    def account(self) -> dict[str, object]:
        return self.book.account_json()

    def set_order_fields(self, ref: str, **fields: object) -> dict[str, object]:
        """Raw values for an order (e.g. ``status="some_new_status"``); see the book."""
        return self.book.set_order_fields(ref, **fields)

    def set_position_fields(self, symbol: str, /, **fields: object) -> dict[str, object]:
        """Raw JSON overrides for a position (``DROP`` removes a key)."""
        return self.book.set_position_fields(symbol, **fields)

    # ------------------------------------------------------------------ faults
    # The account's requests only.

    def set_faults(self, config: FaultConfig | None) -> None:
        """Replace the random faults (None: off); the seed's sequence starts over."""
        self.faults.configure(config)

    def inject_next(
        self, route: str, kind: FaultKind | str, count: int = 1, **options: Any
    ) -> None:
        """Force a fault on the next ``count`` requests of ``route`` (``"POST /v2/orders"``);
        ``options`` (``status``, ``retry_after_s``, ``stall_s``) as
        :meth:`FaultInjector.inject_next` takes them, with its defaults."""
        self.faults.inject_next(route, kind, count, **options)

    def fault_log(self) -> list[FaultEvent]:
        """Faults applied so far, in order."""
        return self.faults.events()

    def clear_faults(self) -> None:
        """Random faults off, forced faults and the fault log dropped."""
        self.faults.configure(None)
        self.faults.clear()

    # ------------------------------------------------------------------ the stream
    # Faults: the account's events. Connections: the account's (on the broker: every one).

    @property
    def stream_faults(self) -> StreamFaultConfig | None:
        """The seeded stream faults in force (None: off)."""
        return self._paper.stream_injector.config

    def set_stream_faults(self, config: StreamFaultConfig | None) -> None:
        """Replace the seeded stream faults (None: off); the seed's sequence starts over."""
        self._paper.stream_injector.configure(config)

    def stream_inject_next(
        self, kind: StreamFaultKind | str, count: int = 1, **options: Any
    ) -> None:
        """Force ``drop``, ``stall`` or ``duplicate`` on the account's next ``count`` events
        pushed to a connection; ``options`` (``stall_s``) as
        :meth:`StreamFaultInjector.inject_next` takes them, with its default."""
        self._paper.stream_injector.inject_next(kind, count, **options)

    def stream_fault_log(self) -> list[StreamFaultEvent]:
        """Stream faults applied so far, in order."""
        return self._paper.stream_injector.events()

    def clear_stream_faults(self) -> None:
        """Seeded stream faults off, forced ones and the log dropped."""
        self._paper.stream_injector.configure(None)
        self._paper.stream_injector.clear()

    def stream_drop(self) -> int:
        """Cut the stream connections now, without a close frame (their keys' slots are free
        when this returns); returns how many."""
        return self.stream.drop_all(self._scope())

    def stream_stall(self, seconds: float) -> int:
        """Send nothing on the open stream connections for ``seconds`` (events and pongs wait,
        then go out in order); returns how many connections."""
        return self.stream.stall_all(seconds, self._scope())

    def stream_listeners(self) -> int:
        """Connections authenticated and listening to trade_updates."""
        return self.stream.listeners(self._scope())

    def stream_keys(self) -> list[str]:
        """API keys with an authenticated stream connection open."""
        return self.stream.connected_keys(self._scope())

    def wait_for_stream_listeners(self, count: int = 1, timeout: float | None = 5.0) -> bool:
        """Wait until exactly ``count`` connections listen (a consumer has (re)connected, or
        has gone); False on timeout."""
        return self.stream.wait_for_listeners(count, timeout, self._scope())


class AccountHandle(AccountMethods):
    """The handle of an account ``PaperBroker.add_account`` added: its book, faults and stream
    (see :class:`AccountMethods`), its keys and its own rate budget."""

    def __init__(self, broker: PaperBroker, account: PaperAccount) -> None:
        self._broker = broker
        self._paper = account
        self.stream = broker.stream

    @property
    def name(self) -> str:
        return self._paper.name

    @property
    def api_key(self) -> str:
        """The key the account was added with (``APCA-API-KEY-ID``)."""
        return self._broker.keyring.first_key(self._paper)[0]

    @property
    def secret_key(self) -> str:
        return self._broker.keyring.first_key(self._paper)[1]

    def keys(self) -> list[str]:
        """Every API key that opens this account."""
        return self._broker.keyring.keys_of(self._paper)

    def add_key(self, key_id: str, secret: str) -> None:
        """Another key pair for this account (its own rate-limit window); ``ValueError`` when
        another account holds ``key_id``."""
        self._broker.keyring.add_key(self._paper, key_id, secret)

    def set_rate_limit(self, per_window: int | None) -> None:
        """This account's own budget per window for each of its keys (None: the broker's,
        ``PaperBroker.set_rate_limit``); its keys' windows start over."""
        if per_window is not None and per_window < 1:
            raise ValueError("per_window must be at least 1 (None: the broker's)")
        self._paper.rate_limit_per_min = per_window
        self._broker.limiter.forget(self.keys())

    def __repr__(self) -> str:
        return f"<AccountHandle {self.name} orders={self.book.order_count()}>"
