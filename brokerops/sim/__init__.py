"""An Alpaca Trading API v2 compatible paper broker on loopback (demo, tests, benchmarks, chaos).

The real alpaca-py client talks to it unchanged::

    from alpaca.trading.client import TradingClient
    from brokerops.sim import PaperBroker

    with PaperBroker(default_assets=True) as broker:  # as strict as Alpaca by default
        client = TradingClient("test-key", "test-secret", paper=True, url_override=broker.base_url)
        client.get_all_positions()

Command line: ``python -m brokerops.sim --port 8765 [--scenario empty|default|demo]
[--strict|--lenient] [--fill-delay-s S] [--crypto-fee-bps N] [--[no-]crypto-rules]
[--crypto-min-cost USD] [--[no-]reserve-buying-power] [--[no-]wash-trade-check]
[--rate-limit-per-min N (0: off)] [--[no-]retry-after-header] [--key ID:SECRET]
[--account [NAME=]ID:SECRET] [--fault NAME=VALUE] [--stream-fault NAME=VALUE]`` (see
``__main__.py``).

Fidelity: strict like Alpaca (the default), or lenient
------------------------------------------------------
A fake broker more lenient than the real one hides bugs, so by default the paper broker behaves
like Alpaca (docs/design.md section 9). Each of Alpaca's behaviours is a rule of
:class:`~brokerops.sim.fidelity.Fidelity` (``fidelity.py``), one keyword each, and every lenient
value stays available as an option for the tests that need it:

=========================  =============  ====================================================
rule (keyword)             ``LENIENT``    ``STRICT`` (Alpaca; the default)
=========================  =============  ====================================================
``fill_delay_s``           0 (instant)    0.1: orders answer ``pending_new``, fill later
``crypto_fee_bps``         0              25, paid in the coin received on buys
``crypto_rules``           False          True: min size/increment, $1 minimum, cash only
``crypto_min_cost``        1              1 (dollars; used under ``crypto_rules``)
``reserve_buying_power``   False          True: open buys (and shorts) hold buying power
``wash_trade_check``       False          True: 403 ``potential wash trade detected...``
``rate_limit_per_min``     None (off)     200 per API key, ``X-RateLimit-*`` on every answer
``retry_after_header``     True           False: 429 without ``Retry-After``
=========================  =============  ====================================================

``PaperBroker(strict=True)`` takes ``STRICT``, ``strict=False`` ``LENIENT``, ``fidelity=`` any
``Fidelity``; with none of them, ``fidelity.DEFAULT``, which is ``STRICT``. Any rule keyword
overrides the profile (``PaperBroker(fill_delay_s=0)``: Alpaca in every way but instant fills;
``PaperBroker(strict=False, crypto_fee_bps=25)``: lenient but for the fee); an omitted keyword
(``PROFILE``) keeps the profile's value, so ``rate_limit_per_min=None`` means off.
``fidelity`` (property) is the rules in force; ``set_fidelity(fidelity=None, **rules)`` changes
them while running (``set_fidelity(fill_delay_s=0.5)``); ``STRICT.replace(**rules)`` builds one.

Always as Alpaca, whatever the profile: error codes and bodies (below), nanosecond timestamps,
the market-data routes, the crypto size fields on assets, shorts refused with 422.

Lifecycle
---------
``PaperBroker()`` is as strict as Alpaca unless told otherwise: a new order is answered
``pending_new`` with ``filled_qty`` "0" and fills 0.1 s later (wait with ``settle()`` or by
polling the order, as a client would), a key gets 200 requests a minute, crypto buys pay the fee
in the coin, open buys hold buying power and wash trades are refused. ``strict=False`` (or one
rule keyword, e.g. ``fill_delay_s=0``) brings back the lenient behaviour.

``PaperBroker(*, keys={"test-key": "test-secret"}, host="127.0.0.1", port=0, strict=None,
fidelity=None, fill_delay_s=PROFILE, crypto_fee_bps=PROFILE, crypto_rules=PROFILE,
crypto_min_cost=PROFILE, reserve_buying_power=PROFILE, wash_trade_check=PROFILE,
rate_limit_per_min=PROFILE, retry_after_header=PROFILE, rate_limit_window_s=60.0, faults=None,
stream_faults=None, cash=Decimal("1000000"), multiplier=Decimal(2), enforce_buying_power=True,
auto_fill=True, default_assets=False)``

- ``start() -> PaperBroker`` binds (port 0: a free port) and serves in a thread, plus the thread
  that releases delayed orders; ``stop()`` ends promptly (stalled requests are dropped,
  keep-alive connections closed, all threads joined; delayed orders stay pending and are
  released after the next ``start``); also a context manager. Start/stop as often as you like;
  the state survives a restart.
- ``base_url`` is ``http://127.0.0.1:PORT`` (no ``/v2``); ``port``; ``running``;
  ``add_key(key_id, secret)``. Unknown keys get 401 ``{"message": "unauthorized."}`` (no code).

State (all thread-safe; JSON-shaped snapshots are exactly what the API serves)
------------------------------------------------------------------------------
- ``add_asset(symbol, *, asset_class="us_equity", tradable=True, fractionable=True,
  shortable=True, easy_to_borrow=True, marginable=True, exchange="NASDAQ"|"CRYPTO", name=None,
  status="active", price=Decimal(100), lastday_price=None, asset_id=None, min_order_size=None,
  min_trade_increment=None, price_increment=None) -> dict``. Crypto symbols are ``BASE/QUOTE``;
  crypto assets serve ``min_order_size``/``min_trade_increment``/``price_increment`` (defaults
  0.000000002/0.000000001/0.01); asset ids are stable per symbol (uuid5).
- ``add_default_assets()``: AAPL, MSFT, SPY, TSLA, NOSHRT (not shortable), WHOLE (not
  fractionable), HALTD (not tradable), PENNY ($0.50), BTC/USD (min 0.0001, increment
  0.000000001, price increment 1), ETH/USD (0.001, 0.000000001, 0.1).
- ``set_price(symbol, price, *, lastday_price=None) -> list[dict]`` (orders it filled; also the
  symbol's new latest trade for market data); ``price(symbol) -> Decimal``.
- ``set_market_data(symbol, price, *, size=None, at=None) -> dict | None``: the latest trade the
  market-data routes serve, without moving the fill price; ``None`` removes the symbol's market
  data (absent from the answers, as for "no price") until the next ``set_price``; an old ``at``
  makes it stale.
- ``seed_position(symbol, qty, avg_entry_price=None) -> dict | None``: signed qty, 0 removes;
  no order, cash unchanged.
- ``seed_order(symbol, qty=None, side="buy", *, notional=None, type="market",
  time_in_force="day", limit_price=None, stop_price=None, status="new", client_order_id=None,
  order_id=None, submitted_at=None, created_at=None, updated_at=None, filled_qty=None,
  filled_avg_price=None, filled_at=None, canceled_at=None, extended_hours=False,
  position_intent=None, move_position=False, fillable=False) -> dict``: no HTTP, no validation,
  20,000 in about a second; times are datetimes (naive: UTC) or RFC 3339 text (nanoseconds
  kept); open seeded orders are left alone by the fill model unless ``fillable`` (but they hold
  buying power and count for the wash-trade check like any open order). Raises ``ValueError``
  for a reused client_order_id.
- ``fill_order(ref, qty=None, price=None)``, ``set_auto_fill(enabled)``,
  ``match_orders(symbol=None)``, ``expire_day_orders()``: drive fills by hand (partial fills,
  fills that lag).
- Delayed fills (``fill_delay_s`` > 0, the default): ``settle(timeout=5.0) -> bool`` waits
  until every pending order has reached the fill model (False on timeout; works with or without
  the server running); ``release_pending() -> list[dict]`` sends them all now;
  ``pending_count()``.
- ``cancel_order_manually(ref) -> dict`` (ref = order id or client_order_id);
  ``reject_order_manually(ref) -> dict`` (an accepted order rejected by the venue: ``rejected``,
  ``failed_at``);
  ``close_position_manually(symbol, *, with_order=True) -> dict | None`` (fills at once).
- ``orders() -> list[dict]`` (oldest first), ``order(ref) -> dict | None``,
  ``positions() -> list[dict]``, ``position(symbol_or_asset_id) -> dict | None`` (accepts
  ``BTC/USD`` and ``BTCUSD``), ``account() -> dict``, ``set_cash(amount)``.
- Raw values alpaca-py may not know: ``set_asset_fields(symbol, **fields)`` (e.g.
  ``exchange="NEWEXCH"``; also shows in positions), ``set_order_fields(ref, **fields)`` (e.g.
  ``status="some_new_status"``, which counts as open), ``set_position_fields(symbol, **fields)``.
  Other keys override the served JSON verbatim; the value ``DROP`` removes a key.
- ``book``: the underlying :class:`~brokerops.sim.book.Book`, a facade over the order book, the
  account, the fill model (documented in ``fills.py``) and the matching engine, on the market
  (``venue``, shared by every account).

Several accounts
----------------
One broker serves many accounts at once (docs/design.md section 16), each API key opening one:
the keys the broker is made with (``test-key``/``test-secret`` by default) open the first
account, which every method above addresses, so a single-account test changes nothing.

- ``add_account(api_key, secret_key, *, name=None, cash=1000000, multiplier=2,
  enforce_buying_power=True, auto_fill=True, rate_limit_per_min=None, faults=None,
  stream_faults=None) -> AccountHandle``: another account with its own book (positions, orders,
  cash; client_order_ids unique within it, as at Alpaca), its own faults and stream faults, its
  own trade_updates subscribers and its own delayed fills; ``rate_limit_per_min`` is its budget
  per window for each of its keys (None: the broker's). Running or not. A key another account
  holds is refused (``ValueError``): two accounts on one key would fight over its stream.
- The handle (``handle.py``) has every method of the "State" list above that is not about the
  market (``seed_position``, ``seed_order``, ``orders``, ``positions``, ``account``,
  ``set_cash``, ``fill_order``, ``settle``, ``close_position_manually``, ...), the faults
  (``set_faults``, ``inject_next``, ``fault_log``, ``clear_faults``, the ``stream_*`` faults),
  ``stream_drop``/``stream_stall``/``stream_listeners``/``stream_keys``/
  ``wait_for_stream_listeners`` for its own connections, ``add_key``, ``keys()``, ``api_key``,
  ``secret_key``, ``name`` and ``set_rate_limit(per_window)`` (None: the broker's).
- ``account_for(api_key) -> AccountHandle`` (``KeyError`` when unknown; the first account's keys
  too); ``accounts() -> list[AccountHandle]``, the first account first.
- What is the broker's, for every account: the market (``add_asset``, ``set_price`` fills the
  resting orders it crosses in every book, ``set_market_data``, ``set_asset_fields``), the
  rules (``fidelity``, ``set_fidelity``), ``set_rate_limit`` (every key whose account has no
  budget of its own), the counters, and the broker's own ``stream_*`` connection methods, which
  see every account's connections.
- Requests are routed by ``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY``, the stream by its
  ``auth`` message; a key with another account's secret is unknown (401).

Fill model and money
--------------------
Market orders fill in full at the current price when they reach the market: ``fill_delay_s`` after
submission (0.1 s by default; until then ``pending_new``, ``filled_qty`` "0", the position not yet
moved, and a crossing ``set_price`` does not fill them early), or at once, in the answer itself,
with ``fill_delay_s=0``. Limit orders fill when a settable price crosses; stops trigger at the stop;
``ioc``/``fok`` limits that do not cross are canceled; with ``auto_fill`` off orders rest as
``accepted``. Buying power is ``equity * multiplier - gross market value`` (minus what open opening
orders hold under ``reserve_buying_power``: unfilled quantity times limit, stop or current price;
also shown in ``buying_power`` and ``non_marginable_buying_power``). A crypto buy under
``crypto_fee_bps`` holds less than it bought: the fee is truncated to 1e-9 coin plus one 1e-9 step
(0.0002 BTC at 25 bps holds 0.000199499, Alpaca's example); ``filled_qty`` stays the ordered
quantity; a crypto sale pays the fee in dollars. Under ``crypto_rules`` crypto buys are checked
against ``non_marginable_buying_power`` (cash).

Rate limit, faults, counters
----------------------------
- ``set_rate_limit(per_window, window_s=60.0)`` (None: off; also what
  ``fidelity.rate_limit_per_min`` reports; by default 200 a minute, Alpaca's). Per API key,
  fixed window; with a limit every answer to an authenticated request (but the HTML 502 page)
  carries ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (Unix seconds, integer); beyond
  the limit 429 ``{"code": 42910000, "message": "rate limit exceeded"}``, with ``Retry-After``
  only under ``retry_after_header`` (Alpaca sends none: ``X-RateLimit-Remaining: 0`` and the
  reset say the wait). Market-data requests count like the rest.
- ``set_faults(FaultConfig(seed=1, latency_s=0, latency_jitter_s=0, stall_rate=0,
  stall_after_rate=0, stall_s=30, reset_before_rate=0, reset_after_rate=0, error_5xx_rate=0,
  error_5xx_after_rate=0, status_5xx=(500, 502, 503, 504), non_json_rate=0,
  non_json_after_rate=0, rate_429=0, retry_after_s=1, methods=None, routes=None))``: seeded and
  reproducible; ``*_after`` kinds apply the request first (the order IS placed). An injected 429
  carries ``Retry-After: retry_after_s`` under ``retry_after_header``, else
  ``X-RateLimit-Remaining: 0`` and ``X-RateLimit-Reset`` ``retry_after_s`` ahead.
- ``inject_next(route, kind, count=1, *, status=None, retry_after_s=1, stall_s=30.0)`` with
  route ``"POST /v2/orders"`` (or ``"*"``) and kind one of ``FaultKind``: ``stall``,
  ``stall_after``, ``reset_before``, ``reset_after``, ``5xx``, ``5xx_after``, ``non_json``,
  ``non_json_after``, ``429``. ``fault_log() -> list[FaultEvent]``; ``clear_faults()``.
- ``counters() -> dict[(method, template), int]`` e.g. ``("GET", "/v2/orders/{id}")``, faults and
  429s included; ``total_requests()``; ``rate_limited_count()``; ``status_counts()`` (0 = reset);
  ``reset_counters()``.

The trade_updates stream
------------------------
``GET /stream`` on the same port is Alpaca's trade_updates websocket (``stream.py`` has the
protocol, ``websocket.py`` RFC 6455): alpaca-py's ``TradingStream(key, secret, paper=True,
url_override=broker.stream_url)`` works unchanged. Server messages are JSON in binary frames, as
Alpaca's trading stream sends them. ``auth`` (``key``/``secret``) or ``authenticate``
(``data.key_id``/``data.secret_key``) -> ``{"stream": "authorization", "data": {"action":
"authenticate", "status": "authorized"}}`` (bad keys: ``"unauthorized"``, then close 1008); a
second connection of a key that has one open is refused: ``{"stream": "authorization", "data":
{"action": "authenticate", "error": "your connection is rejected while another connection is
open under the same account"}}``, then close 1008 ``connection limit exceeded``. ``listen``
``{"streams": ["trade_updates"]}`` -> ``{"stream": "listening", "data": {"streams":
["trade_updates"]}}``. Then ``{"stream": "trade_updates", "data": {"event", "order" (exactly as
the REST API renders it then), "timestamp"}}``, fills also with ``execution_id``, ``price``,
``qty`` (this execution) and ``position_qty`` (the position after it, net of a crypto fee).
Every transition the book applies is pushed: ``pending_new`` (strict: submission) and ``new``
(reaching the market; at once without a fill delay, also for ``accepted`` orders), ``fill`` and
``partial_fill`` (delayed fills, crossing prices, ``fill_order``, manual closes), ``canceled``
(API, ``cancel_order_manually``, unfilled ``ioc``/``fok``), ``expired``
(``expire_day_orders``), ``rejected`` (``reject_order_manually``);
``emit_trade_update(ref, event, **fields) -> dict`` pushes anything else (``replaced``,
``done_for_day``). Seeding and ``set_*_fields`` push nothing. Only authenticated, listening
connections get events, and nothing is kept for later: a client catches up with a REST sync.

- ``stream_url``; ``stream_listeners() -> int``; ``stream_keys() -> list[str]``;
  ``wait_for_stream_listeners(count=1, timeout=5.0) -> bool`` (exactly ``count`` listen).
- ``stream_counters() -> dict``: ``connections_accepted``, ``connections_refused``,
  ``connections_unauthorized``, ``events_published`` (heard or not), ``events_pushed`` (written,
  duplicates included), ``events_duplicated``, ``drops``, ``stalls``; ``reset_counters()``
  resets them too.
- Faults: ``stream_drop() -> int`` cuts every connection now (no close frame; the key's slot is
  free on return); ``stream_stall(seconds) -> int`` sends nothing (events, answers, pongs) for
  that long, then everything in order; ``set_stream_faults(StreamFaultConfig(seed=0,
  drop_rate=0, stall_rate=0, stall_s=5, duplicate_rate=0, drop_after_events=None))``: one
  seeded draw per event pushed to a connection (``drop``: the connection is cut instead of
  sending that event; ``stall``: ``stall_s`` before it; ``duplicate``: sent twice),
  ``drop_after_events`` cuts each connection right after its N-th event;
  ``stream_inject_next(kind, count=1, *, stall_s=5.0)`` forces ``drop``/``stall``/``duplicate``
  on the next events; ``stream_faults``, ``stream_fault_log() -> list[StreamFaultEvent]``,
  ``clear_stream_faults()``.
- ``stop()`` cuts stream connections like any other; stalls end at once.

Routes
------
Trading: ``GET /v2/account``, ``GET /v2/clock``, ``GET /v2/assets``,
``GET /v2/assets/{symbol_or_id}``, ``GET|DELETE /v2/positions``,
``GET|DELETE /v2/positions/{symbol_or_asset_id}``, ``POST|GET|DELETE /v2/orders``,
``GET /v2/orders:by_client_order_id``, ``GET|DELETE /v2/orders/{id}``.

Market data (same port and keys; see ``marketdata.py``):
``GET /v2/stocks/trades/latest?symbols=AAPL,MSFT[&feed=iex]`` -> ``{"trades": {"AAPL": {"t":
"2026-11-25T18:38:26.123456789Z", "x": "V", "p": 187.12, "s": 100, "c": ["@"], "i":
52983525029461, "z": "C"}}}`` and ``GET /v1beta3/crypto/us/latest/trades?symbols=BTC/USD`` ->
``{"trades": {"BTC/USD": {"t": ..., "p": 65000.1, "s": 0.01, "tks": "B", "i": ...}}}``: prices
and sizes are JSON numbers; unknown symbols are absent; a query without ``symbols`` or with an
unknown ``feed`` is 400 ``40010001``. Counter templates ``("GET", "/v2/stocks/trades/latest")``
and ``("GET", "/v1beta3/crypto/{loc}/latest/trades")``.

``GET /stream``: the trade_updates websocket (above; 400 without an upgrade, counted as
``("GET", "/stream")``, never rate limited nor subject to the HTTP faults).

Anything else: 404 ``404 page not found`` (plain text), counted as ``(method, "<unmatched>")``;
a known path with another method gets 405.

Alpaca's shapes
---------------
Money and quantities are strings; timestamps are RFC 3339 UTC with up to nine fractional digits,
trailing zeros dropped as Go writes them (``2026-11-25T18:38:26.123456789Z``, ``...:26.5Z``);
a new order's ``submitted_at`` is 1 µs to 1 ms before its ``created_at``; ``after``/``until`` of
``GET /v2/orders`` compare ``submitted_at`` to the nanosecond. Errors:

- 404 ``{"code": 40410000, "message": "order not found"}`` / ``"position does not exist"``;
- 422 ``40010001`` for parameter errors: a missing or malformed field (``invalid qty``,
  ``invalid side``, ``invalid order type``, ``qty or notional is required``, bad query values),
  an unknown asset, ``client_order_id must be unique`` (also after a cancel), a non-UUID order id
  in ``GET|DELETE /v2/orders/{id}`` (``invalid order id``), crypto sizes under ``crypto_rules``;
- 422 ``42210000`` for trading rules: sub-penny prices, time in force, fractional and extended
  hours rules, not tradable, ``asset "X" cannot be sold short``, ``fractional orders cannot be
  sold short``, an order no longer cancelable;
- 403 ``40310000`` business refusals, with Alpaca's extra fields (keys sorted):
  ``insufficient buying power`` (``buying_power``, ``cost_basis``), ``insufficient qty available
  for order (requested: N, available: M)`` (``available``, ``existing_qty``,
  ``held_for_orders``, ``symbol``), ``insufficient balance for BTC|USD (...)`` (``available``,
  ``balance``), ``cost basis must be >= minimal amount of order 1``, ``potential wash trade
  detected. use complex orders`` (``existing_order_id``, ``reject_reason``: ``opposite side
  market/stop order exists`` or ``opposite side limit order exists``; an order is refused when
  it could execute against an open opposite order on the symbol: market and stop orders always
  could, limits when the buy limit >= the sell limit; trailing stops are exempt);
- 429 ``42910000`` ``rate limit exceeded``; 400 ``40010000`` for a body that is not JSON.

Knowingly simplified
--------------------
The lenient rules (instant fills, no crypto fee or minimums, no reserved buying power, no
wash-trade check, no rate limit, ``Retry-After`` on 429s) are options, never the default. Beyond
them: no market hours (the clock is always open; ``day`` orders expire only via
``expire_day_orders()``); simple orders only (bracket/OCO/OTO get 422, ``PATCH`` replace 405);
trailing stops rest forever; fills happen in full at the current price (no spread, no partial
fills unless ``fill_order`` makes them); one order never flips a position (Alpaca's
``insufficient qty available``); no PDT checks; market data has latest trades only (no quotes,
bars or snapshots); the stream speaks JSON only (no MessagePack), does not time out connections
that never authenticate, and a key's slot frees the moment its connection ends (Alpaca may hold
it for a while after a connection dies without a close).
"""

from .book import Book
from .broker import DEFAULT_KEYS, PaperBroker
from .errors import ApiError
from .faults import (
    FaultConfig,
    FaultEvent,
    FaultKind,
    StreamFaultConfig,
    StreamFaultEvent,
    StreamFaultKind,
)
from .fidelity import LENIENT, PROFILE, STRICT, Fidelity
from .handle import AccountHandle
from .model import DROP
from .scenarios import DEFAULT_ASSETS, SCENARIOS

__all__ = (
    "DEFAULT_ASSETS",
    "DEFAULT_KEYS",
    "DROP",
    "LENIENT",
    "PROFILE",
    "SCENARIOS",
    "STRICT",
    "AccountHandle",
    "ApiError",
    "Book",
    "FaultConfig",
    "FaultEvent",
    "FaultKind",
    "Fidelity",
    "PaperBroker",
    "StreamFaultConfig",
    "StreamFaultEvent",
    "StreamFaultKind",
)
