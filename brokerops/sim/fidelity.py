"""How strictly the paper broker imitates Alpaca: one :class:`Fidelity` field per rule.

A fake broker more lenient than the real one hides bugs (docs/design.md section 9), so each of
Alpaca's behaviours that the project must cope with is a rule here, with two values: the lenient
one (what the paper broker did before these rules existed, :data:`LENIENT`) and Alpaca's own
(:data:`STRICT`).

Where the defaults live: :data:`DEFAULT` is the profile ``PaperBroker()`` uses when the caller
names neither ``strict`` nor ``fidelity``. It is :data:`STRICT`: by default the paper broker
behaves like Alpaca. Every lenient value stays available as an option for the tests that need it:
``PaperBroker(strict=False)`` for all of them, or one keyword on top of the default, e.g.
``PaperBroker(fill_delay_s=0)`` for Alpaca in every way but instant fills or
``PaperBroker(rate_limit_per_min=None)`` for no rate limit.

Rules that are not options (always as Alpaca): error bodies and codes, timestamps with up to nine
fractional digits, the market-data endpoints, ``min_order_size``/``min_trade_increment`` served on
crypto assets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Literal


class _Profile(Enum):
    PROFILE = "profile"

    def __repr__(self) -> str:
        return "PROFILE"


#: Keyword default meaning "the value of the chosen profile" (``None`` is a value: "off").
PROFILE = _Profile.PROFILE
FromProfile = Literal[_Profile.PROFILE]


@dataclass(frozen=True, slots=True)
class Fidelity:
    """One value per rule. The field defaults are the lenient values (``Fidelity()`` is
    :data:`LENIENT`); the paper broker's default profile is :data:`STRICT`, Alpaca's.

    - ``fill_delay_s``: a new order is answered ``pending_new`` with nothing filled and reaches
      the fill model this many seconds later (market orders fill then, limit orders fill or
      rest). 0: orders are matched while the request is answered (instant fills).
    - ``crypto_fee_bps``: taker fee on crypto fills, in basis points. A buy pays it in the coin
      received (the position grows by less than ``filled_qty``), a sell in the dollars received.
    - ``crypto_rules``: crypto orders must meet the asset's ``min_order_size`` and
      ``min_trade_increment`` and cost at least ``crypto_min_cost`` dollars; crypto buys are
      checked against ``non_marginable_buying_power`` (cash: crypto is not marginable).
    - ``crypto_min_cost``: the dollar minimum of a crypto order (Alpaca: 1) under ``crypto_rules``.
    - ``reserve_buying_power``: open opening orders (buy long, sell short) hold buying power until
      they fill or end, so orders placed meanwhile can be refused.
    - ``wash_trade_check``: an order that could execute against an open order of the other side on
      the same symbol is refused with 403 ``potential wash trade detected. use complex orders``.
    - ``rate_limit_per_min``: requests per API key per rate-limit window (60 s unless
      ``PaperBroker.set_rate_limit`` shortens it); None: no limit and no ``X-RateLimit-*`` headers.
    - ``retry_after_header``: 429 answers carry ``Retry-After`` (Alpaca sends none: the wait is in
      ``X-RateLimit-Reset`` only).
    """

    fill_delay_s: float = 0.0
    crypto_fee_bps: Decimal = Decimal(0)
    crypto_rules: bool = False
    crypto_min_cost: Decimal = Decimal(1)
    reserve_buying_power: bool = False
    wash_trade_check: bool = False
    rate_limit_per_min: int | None = None
    retry_after_header: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "fill_delay_s", float(self.fill_delay_s))
        object.__setattr__(self, "crypto_fee_bps", Decimal(self.crypto_fee_bps))
        object.__setattr__(self, "crypto_min_cost", Decimal(self.crypto_min_cost))
        if self.fill_delay_s < 0:
            raise ValueError("fill_delay_s must be >= 0")
        if not 0 <= self.crypto_fee_bps < 10_000:
            raise ValueError("crypto_fee_bps must be between 0 and 10000")
        if self.crypto_min_cost < 0:
            raise ValueError("crypto_min_cost must be >= 0")
        if self.rate_limit_per_min is not None and self.rate_limit_per_min < 1:
            raise ValueError("rate_limit_per_min must be at least 1 (None: off)")

    def replace(self, **changes: object) -> Fidelity:
        """A copy with some rules changed; values equal to :data:`PROFILE` are ignored."""
        given = {name: value for name, value in changes.items() if value is not PROFILE}
        return dataclasses.replace(self, **given)  # type: ignore[arg-type]

    @property
    def is_strict(self) -> bool:
        """True when every rule is on (whatever the values: a 0.05 s delay counts)."""
        return (
            self.fill_delay_s > 0
            and self.crypto_fee_bps > 0
            and self.crypto_rules
            and self.reserve_buying_power
            and self.wash_trade_check
            and self.rate_limit_per_min is not None
            and not self.retry_after_header
        )


#: Every rule off (``strict=False``): instant fills, no fee, no crypto minimums, no reservation,
#: no wash-trade check, no rate limit, ``Retry-After`` on 429s.
LENIENT = Fidelity()

#: Alpaca's behaviour, every rule on with Alpaca's defaults.
STRICT = Fidelity(
    fill_delay_s=0.1,
    crypto_fee_bps=Decimal(25),
    crypto_rules=True,
    crypto_min_cost=Decimal(1),
    reserve_buying_power=True,
    wash_trade_check=True,
    rate_limit_per_min=200,
    retry_after_header=False,
)

#: The profile of ``PaperBroker()`` without ``strict``/``fidelity``: Alpaca's (docs/design.md
#: section 9).
DEFAULT = STRICT


def resolve(strict: bool | None, fidelity: Fidelity | None, **overrides: object) -> Fidelity:
    """The effective rules: a profile (``fidelity``, else ``strict``, else :data:`DEFAULT`) with
    the ``overrides`` that are not :data:`PROFILE` applied on top."""
    if fidelity is not None and strict is not None:
        raise ValueError("pass strict or fidelity, not both")
    if fidelity is not None:
        base = fidelity
    elif strict is None:
        base = DEFAULT
    else:
        base = STRICT if strict else LENIENT
    return base.replace(**overrides)


@dataclass(slots=True)
class Policy:
    """The switches the book's parts (account, matching engine, fill model) read at the moment
    they act: one object they share, so the broker changes them in one place while running
    (under the book's lock): a new :class:`Fidelity`, ``auto_fill``, ``enforce_buying_power``."""

    fidelity: Fidelity
    auto_fill: bool = True
    enforce_buying_power: bool = True
