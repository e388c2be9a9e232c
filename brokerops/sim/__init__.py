"""An Alpaca Trading API v2 compatible paper broker on loopback (demo, tests, benchmarks, chaos).

The real alpaca-py client talks to it unchanged::

    from alpaca.trading.client import TradingClient
    from brokerops.sim import PaperBroker

    with PaperBroker(default_assets=True) as broker:
        client = TradingClient("test-key", "test-secret", paper=True, url_override=broker.base_url)
        client.get_all_positions()

Command line: ``python -m brokerops.sim --port 8765 [--scenario empty|default|demo]
[--rate-limit-per-min N] [--key ID:SECRET] [--fault NAME=VALUE]`` (see ``__main__.py``).

Lifecycle
---------
``PaperBroker(*, keys={"test-key": "test-secret"}, host="127.0.0.1", port=0,
rate_limit_per_min=None, rate_limit_window_s=60.0, faults=None, cash=Decimal("1000000"),
multiplier=Decimal(2), enforce_buying_power=True, auto_fill=True, default_assets=False)``

- ``start() -> PaperBroker`` binds (port 0: a free port) and serves in a thread; ``stop()`` ends
  promptly (stalled requests are dropped, keep-alive connections closed, threads joined); also a
  context manager. Start/stop as often as you like; the state survives a restart.
- ``base_url`` is ``http://127.0.0.1:PORT`` (no ``/v2``); ``port``; ``running``;
  ``add_key(key_id, secret)``. Unknown keys get 401 ``{"message": "unauthorized."}`` (no code).

State (all thread-safe; JSON-shaped snapshots are exactly what the API serves)
------------------------------------------------------------------------------
- ``add_asset(symbol, *, asset_class="us_equity", tradable=True, fractionable=True,
  shortable=True, easy_to_borrow=True, marginable=True, exchange="NASDAQ"|"CRYPTO", name=None,
  status="active", price=Decimal(100), lastday_price=None, asset_id=None) -> dict``.
  Crypto symbols are ``BASE/QUOTE``; asset ids are stable per symbol (uuid5).
- ``add_default_assets()``: AAPL, MSFT, SPY, TSLA, NOSHRT (not shortable), WHOLE (not
  fractionable), HALTD (not tradable), PENNY ($0.50), BTC/USD, ETH/USD.
- ``set_price(symbol, price, *, lastday_price=None) -> list[dict]`` (orders it filled);
  ``price(symbol) -> Decimal``.
- ``seed_position(symbol, qty, avg_entry_price=None) -> dict | None``: signed qty, 0 removes;
  no order, cash unchanged.
- ``seed_order(symbol, qty=None, side="buy", *, notional=None, type="market",
  time_in_force="day", limit_price=None, stop_price=None, status="new", client_order_id=None,
  order_id=None, submitted_at=None, created_at=None, updated_at=None, filled_qty=None,
  filled_avg_price=None, filled_at=None, canceled_at=None, extended_hours=False,
  position_intent=None, move_position=False, fillable=False) -> dict``: no HTTP, no validation,
  20,000 in about a second; open seeded orders are left alone by the fill model unless
  ``fillable``. Raises ``ValueError`` for a reused client_order_id.
- ``fill_order(ref, qty=None, price=None)``, ``set_auto_fill(enabled)``,
  ``match_orders(symbol=None)``,
  ``expire_day_orders()``: drive fills by hand (partial fills, fills that lag).
- ``cancel_order_manually(ref) -> dict`` (ref = order id or client_order_id);
  ``close_position_manually(symbol, *, with_order=True) -> dict | None``.
- ``orders() -> list[dict]`` (oldest first), ``order(ref) -> dict | None``,
  ``positions() -> list[dict]``, ``position(symbol_or_asset_id) -> dict | None`` (accepts
  ``BTC/USD`` and ``BTCUSD``), ``account() -> dict``, ``set_cash(amount)``.
- Raw values alpaca-py may not know: ``set_asset_fields(symbol, **fields)`` (e.g.
  ``exchange="NEWEXCH"``; also shows in positions), ``set_order_fields(ref, **fields)`` (e.g.
  ``status="some_new_status"``, which counts as open), ``set_position_fields(symbol, **fields)``.
  Other keys override the served JSON verbatim; the value ``DROP`` removes a key.
- ``book``: the underlying :class:`~brokerops.sim.book.Book` (fill model documented there).

Rate limit, faults, counters
----------------------------
- ``set_rate_limit(per_window, window_s=60.0)`` (None: off, the default). Per API key, fixed
  window; responses carry ``X-RateLimit-Limit/-Remaining/-Reset``; beyond the limit 429
  ``{"code": 42910000, "message": "rate limit exceeded"}`` with ``Retry-After``.
- ``set_faults(FaultConfig(seed=1, latency_s=0, latency_jitter_s=0, stall_rate=0,
  stall_after_rate=0, stall_s=30, reset_before_rate=0, reset_after_rate=0, error_5xx_rate=0,
  error_5xx_after_rate=0, status_5xx=(500, 502, 503, 504), non_json_rate=0,
  non_json_after_rate=0, rate_429=0, retry_after_s=1, methods=None, routes=None))``: seeded and
  reproducible; ``*_after`` kinds apply the request first (the order IS placed).
- ``inject_next(route, kind, count=1, *, status=None, retry_after_s=1, stall_s=30.0)`` with
  route ``"POST /v2/orders"`` (or ``"*"``) and kind one of ``FaultKind``: ``stall``,
  ``stall_after``, ``reset_before``, ``reset_after``, ``5xx``, ``5xx_after``, ``non_json``,
  ``non_json_after``, ``429``. ``fault_log() -> list[FaultEvent]``; ``clear_faults()``.
- ``counters() -> dict[(method, template), int]`` e.g. ``("GET", "/v2/orders/{id}")``, faults and
  429s included; ``total_requests()``; ``rate_limited_count()``; ``status_counts()`` (0 = reset);
  ``reset_counters()``.

Routes: ``GET /v2/account``, ``GET /v2/clock``, ``GET /v2/assets``,
``GET /v2/assets/{symbol_or_id}``, ``GET|DELETE /v2/positions``,
``GET|DELETE /v2/positions/{symbol_or_asset_id}``, ``POST|GET|DELETE /v2/orders``,
``GET /v2/orders:by_client_order_id``, ``GET|DELETE /v2/orders/{id}``. Anything else: 404
``404 page not found`` (plain text), counted as ``(method, "<unmatched>")``; a known path with
another method gets 405.

Knowingly simplified
--------------------
No market hours (the clock is always open; ``day`` orders expire only via
``expire_day_orders()``); simple orders only (bracket/OCO/OTO get 422, ``PATCH`` replace 405);
trailing stops rest forever; fills happen in full at the current price (no spread, no partial
fills unless ``fill_order`` makes them); buying power is ``equity * multiplier - gross market
value`` checked per order (resting orders reserve none); one order never flips a position
(Alpaca's ``insufficient qty available``); no wash-trade or PDT checks; a new order's response
already shows it filled. ``X-RateLimit-*`` headers are sent only while a limit is set, and not on
401s or the HTML 502 page.

Routes and errors are Alpaca's shapes: ``{"code": 40410000, "message": "order not found"}``,
``{"code": 40410000, "message": "position does not exist"}``, 422/42210000 for validation (incl.
``client_order_id must be unique``, also after a cancel, and sub-penny prices), 403/40310000 for
buying power, held quantity and shorting, 429/42910000 ``rate limit exceeded``.
"""

from .book import Book
from .broker import DEFAULT_KEYS, PaperBroker
from .errors import ApiError
from .faults import FaultConfig, FaultEvent, FaultKind
from .model import DROP
from .scenarios import DEFAULT_ASSETS, SCENARIOS

__all__ = (
    "DEFAULT_ASSETS",
    "DEFAULT_KEYS",
    "DROP",
    "SCENARIOS",
    "ApiError",
    "Book",
    "FaultConfig",
    "FaultEvent",
    "FaultKind",
    "PaperBroker",
)
