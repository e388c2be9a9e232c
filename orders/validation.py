"""Order validation before anything is sent (pure: no Django, no I/O).

:func:`order_plan` turns a PENDING signal into the exact order to send, or into the reasons it
must not be sent. The rules are Alpaca's (so a rejection costs no API call and is explained in
the audit trail) plus the configured risk limits.
"""

from dataclasses import dataclass
from decimal import Decimal

from brokerops.alpaca.types import Asset, OrderRequest
from brokerops.intent.schema import Signal

PRICED_TYPES = {
    "limit": ("limit_price",),
    "stop": ("stop_price",),
    "stop_limit": ("limit_price", "stop_price"),
}
CRYPTO_TIF = frozenset({"gtc", "ioc"})


@dataclass(frozen=True)
class RiskLimits:
    max_notional: Decimal | None = None  # per order; None: no limit
    # A crypto sell of a long holding short of the signal's quantity by at most this many basis
    # points (the buy's fee, kept in the coin) sells what is held.
    crypto_fee_tolerance_bps: Decimal = Decimal(0)


@dataclass(frozen=True)
class OrderPlan:
    """``request`` (send it), ``reasons`` (reject the signal, send nothing), or ``deferred``
    (send nothing now, the signal stays PENDING: a check could not be made, e.g. no price)."""

    request: OrderRequest | None
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    deferred: str = ""

    @property
    def ok(self) -> bool:
        return self.request is not None


def order_plan(
    *,
    signal: Signal,
    asset: Asset | None,
    client_order_id: str,
    held_qty: Decimal = Decimal(0),
    reference_price: Decimal | None = None,
    limits: RiskLimits = RiskLimits(),
) -> OrderPlan:
    """Validate ``signal`` against ``asset`` and the limits.

    ``held_qty`` is the signed position Alpaca reports for the symbol (a sell beyond a long
    holding opens a short); ``reference_price`` is the market's price (the latest trade from
    Alpaca's market data). The max notional values an order at what it can cost
    (`risk_value`): an order by quantity at the larger of its own prices and the market's.
    Risk checks fail closed: with a max notional set and no market price, an order by quantity
    is ``deferred``, never sent, even when it names a price of its own.
    """
    if asset is None:
        return OrderPlan(None, (f"asset {signal.symbol} is not known to Alpaca",))
    crypto = asset.asset_class == "crypto"
    fractional = signal.qty is not None and signal.qty != signal.qty.to_integral_value()
    reasons = _asset_and_size_problems(signal, asset, crypto=crypto, fractional=fractional)
    reasons += _price_problems(signal, asset, crypto=crypto)
    if crypto:
        reasons += _crypto_size_problems(signal, asset, reference_price)
    tif, tif_problem = _time_in_force(signal, crypto=crypto, fractional=fractional)
    if tif_problem:
        reasons.append(tif_problem)

    notes: list[str] = []
    qty = signal.qty
    if crypto and (exit_qty := _crypto_exit_qty(signal, held_qty, limits)) is not None:
        notes.append(
            f"exit sells what is held: {exit_qty} of {qty} (the buy's fee was kept in the coin)"
        )
        qty = exit_qty
    if _short_refused(signal, asset, qty, held_qty, crypto=crypto):
        reasons.append(f"{signal.symbol} is not shortable (sell exceeds the long holding)")
    deferred = ""
    if limits.max_notional is not None:
        estimate = risk_value(signal, reference_price)
        if estimate is None:
            deferred = "no market price to check the max notional against: not sent"
        elif estimate > limits.max_notional:
            reasons.append(
                f"order value {estimate} exceeds the max notional per order {limits.max_notional}"
            )
    if reasons:
        return OrderPlan(None, tuple(reasons), tuple(notes))
    if deferred:
        return OrderPlan(None, (), tuple(notes), deferred=deferred)
    return OrderPlan(_order_request(signal, client_order_id, tif, qty), (), tuple(notes))


def _asset_and_size_problems(
    signal: Signal, asset: Asset, *, crypto: bool, fractional: bool
) -> list[str]:
    """The asset trades, and the signal's size is one Alpaca takes for it: exactly one of qty
    and notional, every amount positive, fractions only where the asset allows them."""
    problems: list[str] = []
    if not asset.tradable or asset.status != "active":
        problems.append(f"asset {signal.symbol} is not tradable")
    if (signal.qty is None) == (signal.notional is None):
        problems.append("exactly one of qty and notional is required")
    for name in ("qty", "notional", "limit_price", "stop_price"):
        value = getattr(signal, name)
        if value is not None and value <= 0:
            problems.append(f"{name} must be positive")
    if not crypto and (fractional or signal.notional is not None) and not asset.fractionable:
        problems.append(f"{signal.symbol} is not fractionable: whole shares only, no notional")
    return problems


def _price_problems(signal: Signal, asset: Asset, *, crypto: bool) -> list[str]:
    """The prices the order type needs are there, each on the asset's price grid."""
    problems: list[str] = []
    order_type = str(signal.order_type)
    for price_name in PRICED_TYPES.get(order_type, ()):
        price = getattr(signal, price_name)
        if price is None:
            problems.append(f"{price_name} is required for {order_type} orders")
        elif (problem := _increment_problem(price_name, price, asset, crypto)) is not None:
            problems.append(problem)
    return problems


def _short_refused(
    signal: Signal, asset: Asset, qty: Decimal | None, held_qty: Decimal, *, crypto: bool
) -> bool:
    """A sell beyond the long holding opens a short, which crypto and an unshortable asset
    cannot take (a notional sell opens one only when nothing long is held)."""
    if str(signal.side) != "sell":
        return False
    opening_short = signal.notional is not None and held_qty <= 0
    if qty is not None:
        opening_short = qty > max(held_qty, Decimal(0))
    return opening_short and (crypto or not asset.shortable)


def _order_request(
    signal: Signal, client_order_id: str, time_in_force: str, qty: Decimal | None
) -> OrderRequest:
    """The order to send: the signal's, with the time in force decided and the quantity a
    crypto exit sells."""
    return OrderRequest(
        symbol=signal.symbol,
        side=str(signal.side),
        type=str(signal.order_type),
        time_in_force=time_in_force,
        qty=qty,
        notional=signal.notional,
        limit_price=signal.limit_price,
        stop_price=signal.stop_price,
        extended_hours=signal.extended_hours,
        client_order_id=client_order_id,
    )


def _increment_problem(name: str, price: Decimal, asset: Asset, crypto: bool) -> str | None:
    if crypto:
        step = asset.price_increment
        if step and price % step != 0:
            return f"{name} {price} is not a multiple of the price increment {step}"
        return None
    places = 2 if price >= 1 else 4
    if price != price.quantize(Decimal(1).scaleb(-places)):
        return (
            f"{name} {price} has sub-penny precision: at most {places} decimals "
            f"{'at or above' if places == 2 else 'below'} $1.00"
        )
    return None


def _crypto_exit_qty(signal: Signal, held_qty: Decimal, limits: RiskLimits) -> Decimal | None:
    """The held quantity when a crypto sell asks for a little more than a long holding has
    (the fee of the buy, within the tolerance); None when the signal's quantity stands."""
    qty = signal.qty
    if str(signal.side) != "sell" or qty is None or not 0 < held_qty < qty:
        return None
    if qty - held_qty > qty * limits.crypto_fee_tolerance_bps / 10_000:
        return None
    return held_qty


CRYPTO_MIN_COST = Decimal(1)  # Alpaca's minimum crypto order value, in USD


def _crypto_size_problems(
    signal: Signal, asset: Asset, reference_price: Decimal | None
) -> list[str]:
    """Alpaca's crypto minimums: ``min_order_size``, ``min_trade_increment``, $1 of cost."""
    problems = []
    qty = signal.qty
    if qty is not None:
        if asset.min_order_size and qty < asset.min_order_size:
            problems.append(
                f"qty {qty} is below {signal.symbol}'s minimum order size {asset.min_order_size}"
            )
        step = asset.min_trade_increment
        if step and qty % step != 0:
            problems.append(f"qty {qty} is not a multiple of the trade increment {step}")
    cost = _order_cost(signal, reference_price)
    if cost is not None and cost < CRYPTO_MIN_COST:
        problems.append(f"order value {cost} is below the ${CRYPTO_MIN_COST} crypto minimum")
    return problems


def _time_in_force(signal: Signal, *, crypto: bool, fractional: bool) -> tuple[str, str | None]:
    """The TIF to send and, when the signal's explicit TIF breaks a rule, the problem."""
    explicit = signal.time_in_force
    order_type = str(signal.order_type)
    day_only = not crypto and (fractional or signal.notional is not None)
    if signal.extended_hours and (order_type != "limit" or crypto):
        return "day", "extended hours needs a limit order with time in force day (equities only)"
    if explicit is None:
        if signal.timeout_seconds:
            tif = "ioc"
        elif signal.extended_hours or day_only:
            tif = "day"
        elif crypto or order_type in ("limit", "stop_limit"):
            tif = "gtc"
        else:
            tif = "day"
    else:
        tif = explicit
    if crypto and tif not in CRYPTO_TIF:
        return tif, f"crypto orders take time in force gtc or ioc, not {tif}"
    if day_only and tif != "day":
        return tif, f"fractional and notional equity orders take time in force day, not {tif}"
    if signal.extended_hours and tif != "day":
        return tif, f"extended hours orders take time in force day, not {tif}"
    return tif, None


def risk_value(signal: Signal, market_price: Decimal | None) -> Decimal | None:
    """What an order can cost, for the max notional: its notional, or its quantity at the
    larger of its own prices and the market's; None (fail closed) without a market price.

    An order's own price bounds nothing on its own: a buy stop at $1 triggers at once and fills
    at the market, and so does a sell limit at $0.01. The market's price alone is not enough
    either: a buy limit far above the market may fill up to its limit. Without the market's
    price the own price cannot be trusted, so the check cannot be made (docs/design.md
    section 5: risk checks fail closed).
    """
    if signal.notional is not None:
        return signal.notional
    if signal.qty is None or market_price is None:
        return None
    own = [p for p in (signal.limit_price, signal.stop_price) if p is not None]
    return signal.qty * max([market_price, *own])


def _order_cost(signal: Signal, reference_price: Decimal | None) -> Decimal | None:
    """The order's value as Alpaca prices its crypto minimum: its notional, or its quantity at
    its own price (the market's for a market order)."""
    if signal.notional is not None:
        return signal.notional
    price = signal.limit_price or signal.stop_price or reference_price
    if signal.qty is None or price is None:
        return None
    return signal.qty * price
