"""What one call of the order cycle decides on: the context read once, the signals re-read.

Every order of a call is checked against the same positions, risk limits and latest prices
(`submit_context_open`, read in bulk), and sent only for a document seen PENDING at most
`REREAD_MAX_AGE_S` before its request (`SignalReread`, docs/design.md section 3). The context
also carries the accepted orders whose post-send work is still to do (`AcceptedOrder`,
`orders.services.finish`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings

from brokerops.accounts import AccountConfig
from brokerops.alpaca import BrokerError, BrokerRejected, Order, Position
from brokerops.intent.schema import InvalidSignal, Signal
from brokerops.intent.store import AccountScope, SignalStore
from orders.models import OrderAttempt
from orders.validation import RiskLimits

from .outcomes import SignalOutcome

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway

#: A re-read older than this is done again before the next request of its chunk: the signal
#: sent is one its writer had PENDING at most this long before the request (plus the request).
REREAD_MAX_AGE_S = 0.25


@dataclass
class SubmitContext:
    """What every order of one call is checked against (read once, `submit_context_open`), and
    the accepted orders whose post-send work is still to do. ``scope``: the account the call
    sends for (docs/design.md section 16), through ``gateway``, that account's."""

    gateway: AlpacaGateway
    store: SignalStore
    actor: str
    scope: AccountScope
    positions: dict[str, Position]
    limits: RiskLimits
    prices: dict[str, Decimal]  # symbol_key -> latest trade price (Alpaca's market data)
    prices_error: str = ""  # why prices could not be read (orders needing one are deferred)
    accepted: list[AcceptedOrder] = field(default_factory=list)

    @property
    def account(self) -> AccountConfig:
        return self.scope.accounts.get(self.scope.name)

    @property
    def prefix(self) -> str:
        """The account's client_order_id prefix: its claim space."""
        return self.account.client_order_id_prefix


@dataclass
class AcceptedOrder:
    """An order the broker has for a signal, whose post-send work is not done yet: the attempt
    takes the order's state, the signal moves PENDING -> SUBMITTED (and on when the order is
    final), with their audit rows (`orders_accepted_finish`)."""

    signal: Signal
    attempt: OrderAttempt
    order: Order
    outcome: SignalOutcome
    response: bool  # the broker's answer to our request (its RESPONSE event is still due)


def submit_context_open(
    signals: Sequence[Signal],
    *,
    gateway: AlpacaGateway,
    store: SignalStore,
    actor: str,
    scope: AccountScope,
) -> SubmitContext:
    """What every order of a call is checked against, read in bulk: positions (a 401 or an
    unavailable broker raises: nothing can be sent) and the latest trade of every symbol."""
    positions = {p.symbol_key: p for p in gateway.list_positions()}
    prices: dict[str, Decimal] = {}
    prices_error = ""
    # With a max notional, every order by quantity is valued at the market's price too, its own
    # price or not (`orders.validation.risk_value`): a stop or limit names no bound on what it
    # fills at. Without one, only an order naming no price of its own needs the market's (the
    # crypto minimum cost), so a cycle of limit orders makes no market-data call.
    max_notional = bool(settings.ORDER_MAX_NOTIONAL)
    symbols = sorted(
        {
            s.symbol
            for s in signals
            if s.qty is not None
            and (max_notional or (s.limit_price is None and s.stop_price is None))
        }
    )
    if symbols:
        try:
            prices = gateway.latest_trade_prices(symbols)
        except BrokerRejected as exc:
            if exc.is_auth_error:
                raise
            prices_error = f"market data refused: {exc}"
        except BrokerError as exc:  # orders that need a price are deferred with this reason
            prices_error = f"market data unavailable: {exc}"
    return SubmitContext(
        gateway=gateway,
        store=store,
        actor=actor,
        scope=scope,
        positions=positions,
        limits=RiskLimits(
            max_notional=settings.ORDER_MAX_NOTIONAL or None,
            crypto_fee_tolerance_bps=settings.CRYPTO_FEE_TOLERANCE_BPS,
        ),
        prices=prices,
        prices_error=prices_error,
    )


#: What a caller knows of the store without reading it (the watcher's listener): the documents
#: among the ids that were PENDING in a consistent read at most ``max_age_s`` old.
PendingView = Callable[[Sequence[str], float], Mapping[str, Signal | InvalidSignal]]


class SignalReread:
    """The signals of a chunk as stored now: what ``view`` vouches for (PENDING in a consistent
    read at most `REREAD_MAX_AGE_S` old: the watcher's listener had it in its last snapshot),
    else read in one call when the first is needed and read again (what is left of the chunk)
    once older than `REREAD_MAX_AGE_S`."""

    def __init__(
        self, store: SignalStore, signal_ids: list[str], view: PendingView | None = None
    ) -> None:
        self._store, self._ids, self._view = store, signal_ids, view
        self._docs: dict[str, Signal | InvalidSignal | None] = {}
        self._read_at = float("-inf")

    def current(self, signal_id: str) -> Signal | InvalidSignal | None:
        """Raises `SignalStoreError` when the store cannot be read."""
        if self._view is not None:
            vouched = self._view([signal_id], REREAD_MAX_AGE_S).get(signal_id)
            if vouched is not None:
                return vouched
        if signal_id not in self._docs or time.monotonic() - self._read_at > REREAD_MAX_AGE_S:
            rest = self._ids[self._ids.index(signal_id) :]
            self._docs = self._store.get_many(rest)
            self._read_at = time.monotonic()
        return self._docs[signal_id]
