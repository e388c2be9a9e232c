"""``PaperBroker``: the paper broker's lifecycle and Python handle (see the package docstring)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

from .account import DEFAULT_CASH, DEFAULT_MULTIPLIER
from .book import Book
from .counters import RequestCounters
from .faults import (
    FaultConfig,
    FaultEvent,
    FaultInjector,
    FaultKind,
    StreamFaultConfig,
    StreamFaultEvent,
    StreamFaultInjector,
    StreamFaultKind,
)
from .fidelity import PROFILE, Fidelity, FromProfile, resolve
from .ratelimit import RateLimiter
from .scenarios import add_default_assets
from .scheduler import FillScheduler
from .server import BrokerHTTPServer
from .stream import STREAM_PATH, StreamHub

DEFAULT_KEYS: Mapping[str, str] = {"test-key": "test-secret"}


class PaperBroker:
    """An Alpaca Trading API v2 compatible paper broker serving HTTP on loopback.

    State lives in :attr:`book` and survives ``stop``/``start``; the server is only transport.
    Thread-safe: tests may seed and change state while clients call in.

    How strictly it imitates Alpaca is :attr:`fidelity`: the profile named by ``fidelity`` or
    ``strict`` (True: :data:`~brokerops.sim.fidelity.STRICT`, False:
    :data:`~brokerops.sim.fidelity.LENIENT`, neither: :data:`~brokerops.sim.fidelity.DEFAULT`),
    with every rule keyword that is given (not ``PROFILE``) applied on top.
    """

    def __init__(
        self,
        *,
        keys: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        strict: bool | None = None,
        fidelity: Fidelity | None = None,
        fill_delay_s: float | FromProfile = PROFILE,
        crypto_fee_bps: Decimal | int | str | FromProfile = PROFILE,
        crypto_rules: bool | FromProfile = PROFILE,
        crypto_min_cost: Decimal | int | str | FromProfile = PROFILE,
        reserve_buying_power: bool | FromProfile = PROFILE,
        wash_trade_check: bool | FromProfile = PROFILE,
        rate_limit_per_min: int | FromProfile | None = PROFILE,
        retry_after_header: bool | FromProfile = PROFILE,
        rate_limit_window_s: float = 60.0,
        faults: FaultConfig | None = None,
        stream_faults: StreamFaultConfig | None = None,
        cash: Decimal = DEFAULT_CASH,
        multiplier: Decimal = DEFAULT_MULTIPLIER,
        enforce_buying_power: bool = True,
        auto_fill: bool = True,
        default_assets: bool = False,
    ) -> None:
        # Over 60 lines only by its signature: one keyword per rule, as the package docstring
        # lists them.
        self._keys: dict[str, str] = dict(DEFAULT_KEYS if keys is None else keys)
        self.host = host
        self._port = port
        self._fidelity = resolve(
            strict,
            fidelity,
            fill_delay_s=fill_delay_s,
            crypto_fee_bps=crypto_fee_bps,
            crypto_rules=crypto_rules,
            crypto_min_cost=crypto_min_cost,
            reserve_buying_power=reserve_buying_power,
            wash_trade_check=wash_trade_check,
            rate_limit_per_min=rate_limit_per_min,
            retry_after_header=retry_after_header,
        )
        self.book = Book(
            cash=cash,
            multiplier=multiplier,
            enforce_buying_power=enforce_buying_power,
            auto_fill=auto_fill,
            fidelity=self._fidelity,
        )
        self.limiter = RateLimiter(self._fidelity.rate_limit_per_min, rate_limit_window_s)
        self.faults = FaultInjector(faults)
        self.stream = StreamHub(
            authenticate=self.authenticate,
            faults=StreamFaultInjector(stream_faults),
        )
        self.book.publisher = self.stream.publish
        self._fills = FillScheduler(self.book)
        self._stopping = threading.Event()
        self._server: BrokerHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        #: What the HTTP side counts (the server writes, :meth:`counters` and its kin read).
        self.requests = RequestCounters()
        if default_assets:
            self.add_default_assets()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> PaperBroker:
        """Bind ``host:port`` (port 0 picks a free one) and serve in a background thread."""
        with self._lifecycle:
            if self._server is not None:
                raise RuntimeError("paper broker already running")
            self._stopping.clear()
            server = BrokerHTTPServer((self.host, self._port), self)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"paper-broker-{server.server_address[1]}",
                daemon=True,
            )
            self._server, self._thread = server, thread
            thread.start()
            self._fills.start()
            return self

    def stop(self) -> None:
        """Stop serving: wake stalls, close every connection, join all threads. Idempotent."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            if server is None or thread is None:
                return
            self._stopping.set()
            server.shutdown()
            server.close_connections()
            server.server_close()
            server.join_handlers()
            thread.join()
            self._fills.stop()
            self._server = self._thread = None

    def __enter__(self) -> PaperBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port; raises ``RuntimeError`` when not running."""
        server = self._server
        if server is None:
            raise RuntimeError("paper broker is not running")
        return int(server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v2``), for ``TradingClient(url_override=...)``."""
        return f"http://{self.host}:{self.port}"

    @property
    def stream_url(self) -> str:
        """``ws://127.0.0.1:PORT/stream``: the trade_updates websocket, for
        ``TradingStream(url_override=...)``."""
        return f"ws://{self.host}:{self.port}{STREAM_PATH}"

    def add_key(self, key_id: str, secret: str) -> None:
        """Accept another API key pair (each key has its own rate-limit window)."""
        self._keys[key_id] = secret

    def authenticate(self, key_id: str, secret: str) -> bool:
        """Whether ``key_id`` is a known API key and ``secret`` its secret (HTTP and stream)."""
        return self._keys.get(key_id) == secret

    def stopped_within(self, seconds: float) -> bool:
        """Wait ``seconds`` (a stall, a latency) unless the broker stops first: True when it
        did, so the caller drops its connection instead of answering."""
        return self._stopping.wait(seconds)

    # ------------------------------------------------------------------ fidelity

    @property
    def fidelity(self) -> Fidelity:
        """The rules in force (see :class:`~brokerops.sim.fidelity.Fidelity`)."""
        return self._fidelity

    def set_fidelity(self, fidelity: Fidelity | None = None, **changes: object) -> Fidelity:
        """Change rules while running: a whole :class:`Fidelity` and/or single rules by name
        (``set_fidelity(fill_delay_s=0)``). Orders already waiting keep their due time; a new
        ``rate_limit_per_min`` restarts the rate-limit windows. Returns the rules now in force."""
        current = self._fidelity if fidelity is None else fidelity
        updated = current.replace(**changes)
        with self.book.lock:
            previous, self._fidelity = self._fidelity, updated
            self.book.fidelity = updated
        if updated.rate_limit_per_min != previous.rate_limit_per_min:
            self.limiter.configure(updated.rate_limit_per_min, self.limiter.window_s)
        return updated

    # ------------------------------------------------------------------ assets and prices

    def add_asset(self, symbol: str, **options: object) -> dict[str, object]:
        """Add or replace an asset; options as :meth:`Book.add_asset` (``asset_class``,
        ``tradable``, ``fractionable``, ``shortable``, ``easy_to_borrow``, ``marginable``,
        ``exchange``, ``name``, ``status``, ``price``, ``lastday_price``, ``asset_id``)."""
        return self.book.add_asset(symbol, **options)  # type: ignore[arg-type]

    def add_default_assets(self) -> None:
        """AAPL, MSFT, SPY, TSLA, NOSHRT (not shortable), WHOLE (not fractionable), HALTD (not
        tradable), PENNY ($0.50), BTC/USD and ETH/USD; see ``scenarios.DEFAULT_ASSETS``."""
        add_default_assets(self.book)

    def set_price(
        self, symbol: str, price: Decimal | str | int, *, lastday_price: Decimal | None = None
    ) -> list[dict[str, object]]:
        """Move a price; resting orders it crosses fill. Returns the orders that filled."""
        return self.book.set_price(symbol, Decimal(price), lastday_price=lastday_price)

    def price(self, symbol: str) -> Decimal:
        return self.book.price(symbol)

    def set_market_data(
        self,
        symbol: str,
        price: Decimal | str | int | None,
        *,
        size: Decimal | str | int | None = None,
        at: datetime | str | None = None,
    ) -> dict[str, object] | None:
        """Set the latest trade the market-data endpoints serve for ``symbol`` (the book's price,
        used for fills, does not move); None removes the symbol's market data, so it is absent
        from their answers until the next :meth:`set_price`. ``at`` (default now) can make it
        stale. Returns the trade as served, or None."""
        return self.book.set_market_data(
            symbol,
            Decimal(price) if price is not None else None,
            size=Decimal(size) if size is not None else None,
            at=at,
        )

    # ------------------------------------------------------------------ positions, orders, account

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

    def set_asset_fields(self, symbol: str, /, **fields: object) -> dict[str, object]:
        """Raw values for an asset (``exchange="NEWEXCH"``); see :meth:`Book.set_asset_fields`."""
        return self.book.set_asset_fields(symbol, **fields)

    def set_order_fields(self, ref: str, **fields: object) -> dict[str, object]:
        """Raw values for an order (e.g. ``status="some_new_status"``); see the book."""
        return self.book.set_order_fields(ref, **fields)

    def set_position_fields(self, symbol: str, /, **fields: object) -> dict[str, object]:
        """Raw JSON overrides for a position (``DROP`` removes a key)."""
        return self.book.set_position_fields(symbol, **fields)

    # ------------------------------------------------------------------ rate limit and faults

    def set_rate_limit(self, per_window: int | None, window_s: float = 60.0) -> None:
        """Requests per key per window (60 s by default); None switches the limit off. Also
        what ``fidelity.rate_limit_per_min`` reports (then per ``window_s``)."""
        self.limiter.configure(per_window, window_s)
        with self.book.lock:
            self._fidelity = self._fidelity.replace(rate_limit_per_min=per_window)
            self.book.fidelity = self._fidelity

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

    # ------------------------------------------------------------------ the trade_updates stream

    @property
    def stream_faults(self) -> StreamFaultConfig | None:
        """The seeded stream faults in force (None: off)."""
        return self.stream.faults.config

    def set_stream_faults(self, config: StreamFaultConfig | None) -> None:
        """Replace the seeded stream faults (None: off); the seed's sequence starts over."""
        self.stream.faults.configure(config)

    def stream_inject_next(
        self, kind: StreamFaultKind | str, count: int = 1, **options: Any
    ) -> None:
        """Force ``drop``, ``stall`` or ``duplicate`` on the next ``count`` events pushed to a
        connection; ``options`` (``stall_s``) as :meth:`StreamFaultInjector.inject_next` takes
        them, with its default."""
        self.stream.faults.inject_next(kind, count, **options)

    def stream_fault_log(self) -> list[StreamFaultEvent]:
        """Stream faults applied so far, in order."""
        return self.stream.faults.events()

    def clear_stream_faults(self) -> None:
        """Seeded stream faults off, forced ones and the log dropped."""
        self.stream.faults.configure(None)
        self.stream.faults.clear()

    def stream_drop(self) -> int:
        """Cut every stream connection now, without a close frame (their keys' slots are free
        when this returns); returns how many."""
        return self.stream.drop_all()

    def stream_stall(self, seconds: float) -> int:
        """Send nothing on the open stream connections for ``seconds`` (events and pongs wait,
        then go out in order); returns how many connections."""
        return self.stream.stall_all(seconds)

    def stream_listeners(self) -> int:
        """Connections authenticated and listening to trade_updates."""
        return self.stream.listeners()

    def stream_keys(self) -> list[str]:
        """API keys with an authenticated stream connection open."""
        return self.stream.connected_keys()

    def wait_for_stream_listeners(self, count: int = 1, timeout: float | None = 5.0) -> bool:
        """Wait until exactly ``count`` connections listen (a consumer has (re)connected, or
        has gone); False on timeout."""
        return self.stream.wait_for_listeners(count, timeout)

    def stream_counters(self) -> dict[str, int]:
        """``connections_accepted``, ``connections_refused`` (second connection of a key),
        ``connections_unauthorized``, ``events_published`` (by the book, heard or not),
        ``events_pushed`` (written to sockets, duplicates included), ``events_duplicated``,
        ``drops``, ``stalls``."""
        return self.stream.counters()

    # ------------------------------------------------------------------ counters

    def counters(self) -> dict[tuple[str, str], int]:
        """Requests per ``(method, route template)``, faults and 429s included (a copy)."""
        return self.requests.requests()

    def total_requests(self) -> int:
        return self.requests.total()

    def rate_limited_count(self) -> int:
        """429s answered (limit exceeded or injected)."""
        return self.requests.rate_limited()

    def status_counts(self) -> dict[int, int]:
        """Responses per HTTP status; 0 counts connections reset without an answer."""
        return self.requests.statuses()

    def reset_counters(self) -> None:
        """HTTP and stream counters back to zero."""
        self.requests.reset()
        self.stream.reset_counters()

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"<PaperBroker {where} orders={self.book.order_count()}>"
