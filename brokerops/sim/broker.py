"""``PaperBroker``: the paper broker's lifecycle and Python handle (see the package docstring).

It serves several accounts at once (docs/design.md section 16): the one it is made with (its
``keys``, ``test-key``/``test-secret`` by default), which its own account methods address
(``handle.py``), and those ``add_account`` adds, each with its own book, faults and stream
subscribers (``keyring.py``), one rate window per key, on one shared market (``venue.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from types import TracebackType

from .account import DEFAULT_CASH, DEFAULT_MULTIPLIER
from .counters import RequestCounters
from .faults import FaultConfig, FaultInjector, StreamFaultConfig, StreamFaultInjector
from .fidelity import PROFILE, Fidelity, FromProfile, resolve
from .handle import AccountHandle, AccountMethods
from .keyring import Keyring, PaperAccount
from .ratelimit import RateLimiter
from .scenarios import add_default_assets
from .server import BrokerHTTPServer
from .stream import STREAM_PATH, StreamHub
from .venue import Venue

DEFAULT_KEYS: Mapping[str, str] = {"test-key": "test-secret"}
#: The name of the account the broker is made with (an added account is named by its key unless
#: given a name).
FIRST_ACCOUNT = "default"


class PaperBroker(AccountMethods):
    """An Alpaca Trading API v2 compatible paper broker serving HTTP on loopback.

    State lives in the accounts' books (:attr:`book` is the first account's) and the shared
    market (:attr:`venue`), and survives ``stop``/``start``; the server is only transport.
    Thread-safe: tests may seed and change state while clients call in.

    How strictly it imitates Alpaca is :attr:`fidelity`: the profile named by ``fidelity`` or
    ``strict`` (True: :data:`~brokerops.sim.fidelity.STRICT`, False:
    :data:`~brokerops.sim.fidelity.LENIENT`, neither: :data:`~brokerops.sim.fidelity.DEFAULT`),
    with every rule keyword that is given (not ``PROFILE``) applied on top; the rules hold for
    every account.
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
        #: The market every account trades on.
        self.venue = Venue()
        #: Which account each API key opens.
        self.keyring = Keyring()
        self.limiter = RateLimiter(self._fidelity.rate_limit_per_min, rate_limit_window_s)
        self.stream = StreamHub(authenticate=self.keyring.resolve)
        self._stopping = threading.Event()
        self._server: BrokerHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.RLock()
        #: What the HTTP side counts (the server writes, :meth:`counters` and its kin read).
        self.requests = RequestCounters()
        self._paper = self._open_account(
            FIRST_ACCOUNT,
            dict(DEFAULT_KEYS if keys is None else keys),
            cash=cash,
            multiplier=multiplier,
            enforce_buying_power=enforce_buying_power,
            auto_fill=auto_fill,
            faults=faults,
            stream_faults=stream_faults,
        )
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
            for account in self.keyring.accounts():
                account.fills.start()
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
            for account in self.keyring.accounts():
                account.fills.stop()
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
        """Accept another API key pair for the first account (each key has its own rate-limit
        window); ``ValueError`` when another account holds ``key_id``."""
        self.keyring.add_key(self._paper, key_id, secret)

    def revoke_key(self, key_id: str) -> None:
        """Revoke an API key, whichever account it opens: its requests and stream logins get
        401 from now on (a connection already open stays open, as at Alpaca)."""
        self.keyring.revoke_key(key_id)

    def authenticate(self, key_id: str, secret: str) -> bool:
        """Whether ``key_id`` is a known API key and ``secret`` its secret (HTTP and stream)."""
        return self.keyring.resolve(key_id, secret) is not None

    def resolve(self, key_id: str, secret: str) -> PaperAccount | None:
        """The account the key pair opens, or None (the server's 401)."""
        return self.keyring.resolve(key_id, secret)

    def stopped_within(self, seconds: float) -> bool:
        """Wait ``seconds`` (a stall, a latency) unless the broker stops first: True when it
        did, so the caller drops its connection instead of answering."""
        return self._stopping.wait(seconds)

    # ------------------------------------------------------------------ fidelity

    # ------------------------------------------------------------------ accounts

    def add_account(
        self,
        api_key: str,
        secret_key: str,
        *,
        name: str | None = None,
        cash: Decimal | str | int = DEFAULT_CASH,
        multiplier: Decimal | str | int = DEFAULT_MULTIPLIER,
        enforce_buying_power: bool = True,
        auto_fill: bool = True,
        rate_limit_per_min: int | None = None,
        faults: FaultConfig | None = None,
        stream_faults: StreamFaultConfig | None = None,
    ) -> AccountHandle:
        """Serve another account under ``api_key``/``secret_key``: an empty book of its own
        (``cash``, ``multiplier``, ``enforce_buying_power``, ``auto_fill`` as for the broker),
        its own faults and stream faults, and ``rate_limit_per_min`` requests per window for
        each of its keys (None: the broker's budget). Works running or not. ``ValueError`` when
        another account holds the key. Returns the account's handle."""
        account = self._open_account(
            name or api_key,
            {api_key: secret_key},
            cash=Decimal(cash),
            multiplier=Decimal(multiplier),
            enforce_buying_power=enforce_buying_power,
            auto_fill=auto_fill,
            faults=faults,
            stream_faults=stream_faults,
            rate_limit_per_min=rate_limit_per_min,
        )
        return AccountHandle(self, account)

    def _open_account(
        self,
        name: str,
        keys: dict[str, str],
        *,
        faults: FaultConfig | None,
        stream_faults: StreamFaultConfig | None,
        rate_limit_per_min: int | None = None,
        **book_options: object,
    ) -> PaperAccount:
        with self._lifecycle:  # no start, stop or change of rules meanwhile
            book = self.venue.new_book(fidelity=self._fidelity, **book_options)
            account = PaperAccount(
                name=name,
                book=book,
                faults=FaultInjector(faults),
                stream_injector=StreamFaultInjector(stream_faults),
                rate_limit_per_min=rate_limit_per_min,
            )
            self.keyring.add_account(account, keys)
            book.publisher = self.stream.publisher(account, account.stream_injector)
            book.corporate_actions = self.venue.corporate_action
            if self._server is not None:
                account.fills.start()
            return account

    def account_for(self, api_key: str) -> AccountHandle:
        """The handle of the account ``api_key`` opens (the first account's keys too);
        ``KeyError`` for an unknown key."""
        return AccountHandle(self, self.keyring.owner(api_key))

    def accounts(self) -> list[AccountHandle]:
        """Every account's handle, the first account's first."""
        return [AccountHandle(self, account) for account in self.keyring.accounts()]

    def _scope(self) -> PaperAccount | None:
        """The broker's stream methods see every account's connections."""
        return None

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
        previous, updated = self._fidelity, current.replace(**changes)
        self._apply_fidelity(updated)
        if updated.rate_limit_per_min != previous.rate_limit_per_min:
            self.limiter.configure(updated.rate_limit_per_min, self.limiter.window_s)
        return updated

    def _apply_fidelity(self, updated: Fidelity) -> None:
        """The rules of the broker and of every account's book."""
        with self._lifecycle:
            self._fidelity = updated
            for book in self.venue.books():
                with book.lock:
                    book.fidelity = updated

    def set_rate_limit(self, per_window: int | None, window_s: float = 60.0) -> None:
        """Requests per key per window (60 s by default) for every key whose account has no
        budget of its own; None switches the limit off. Also what ``fidelity.rate_limit_per_min``
        reports (then per ``window_s``)."""
        self.limiter.configure(per_window, window_s)
        self._apply_fidelity(self._fidelity.replace(rate_limit_per_min=per_window))

    # ------------------------------------------------------------------ the market
    # One for every account.

    def add_asset(self, symbol: str, **options: object) -> dict[str, object]:
        """Add or replace an asset; options ``asset_class``, ``tradable``, ``fractionable``,
        ``shortable``, ``easy_to_borrow``, ``marginable``, ``exchange``, ``name``, ``status``,
        ``price``, ``lastday_price``, ``asset_id`` and the crypto size fields (the package
        docstring has their defaults)."""
        return self.venue.add_asset(symbol, **options)

    def add_default_assets(self) -> None:
        """AAPL, MSFT, SPY, TSLA, NOSHRT (not shortable), WHOLE (not fractionable), HALTD (not
        tradable), PENNY ($0.50), BTC/USD and ETH/USD; see ``scenarios.DEFAULT_ASSETS``."""
        add_default_assets(self.venue)

    def set_price(
        self, symbol: str, price: Decimal | str | int, *, lastday_price: Decimal | None = None
    ) -> list[dict[str, object]]:
        """Move a price; resting orders it crosses fill, in every account. Returns the orders
        that filled."""
        return self.venue.set_price(symbol, Decimal(price), lastday_price=lastday_price)

    def price(self, symbol: str) -> Decimal:
        return self.book.price(symbol)

    def corporate_action(self, kind: str, **terms: object) -> list[dict[str, object]]:
        """A corporate action at the beginning of the day, in every account (``corporate.py``):
        ``split`` (``new_rate``, ``old_rate``), ``merger`` (``new_symbol``, ``rate``,
        ``cash_rate``), ``name_change`` (``new_symbol``), ``spin_off`` (``new_symbol``,
        ``rate``, ``price``), ``cash_dividend`` (``rate``); each with ``symbol``. Returns the
        activities booked. Also ``POST /_sim/corporate_actions`` with ``{"type": kind, ...}``."""
        return self.venue.corporate_action(kind, **terms)

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
        return self.venue.set_market_data(
            symbol,
            Decimal(price) if price is not None else None,
            size=Decimal(size) if size is not None else None,
            at=at,
        )

    def set_asset_fields(self, symbol: str, /, **fields: object) -> dict[str, object]:
        """Raw values for an asset (``exchange="NEWEXCH"``); see :meth:`Venue.set_asset_fields`."""
        return self.venue.set_asset_fields(symbol, **fields)

    # ------------------------------------------------------------------ counters
    # Every account's.

    def stream_counters(self) -> dict[str, int]:
        """``connections_accepted``, ``connections_refused`` (second connection of a key),
        ``connections_unauthorized``, ``events_published`` (by the book, heard or not),
        ``events_pushed`` (written to sockets, duplicates included), ``events_duplicated``,
        ``drops``, ``stalls``."""
        return self.stream.counters()

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
        return f"<PaperBroker {where} accounts={len(self.keyring.accounts())}>"
