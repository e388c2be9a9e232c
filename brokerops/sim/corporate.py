"""Corporate actions on the paper broker (docs/design.md section 18): split, reverse split,
merger, name change, spin-off and cash dividend, applied as Alpaca's beginning-of-day process
applies them, to the shared market and to every account's book at once.

- A split (``new_rate`` for ``old_rate``; reverse when fewer) moves the price by
  ``old_rate/new_rate`` (4 decimals), each holding's quantity by ``new_rate/old_rate`` (9 decimals,
  rounded down) and its entry price the other way, and books a ``SPLIT`` pair: a ``REMOVE`` of the
  old quantity and an ``ADD`` of the new (``activity_sub_type`` ``FSPLIT``/``RSPLIT``; the
  description says the leg, as Alpaca's does). Resting ``gtc`` orders of a plain order class
  follow: quantity (and what filled of it) times the ratio, limit and stop prices divided by it;
  bracket (``bracket``/``oco``/``oto``) legs are left as they are, as at Alpaca.
- A merger (``rate`` new shares and ``cash_rate`` dollars per old share) and a name change
  (one for one) move each holding to the other symbol: an ``MA``/``NC`` pair (``REMOVE`` the old
  symbol, ``ADD`` the new; the cash part is on the ``ADD``), the new asset added when the market
  lacks it, the old one made inactive and its open orders canceled.
- A spin-off (``rate`` new shares per share held) adds the new symbol beside the old: one
  ``SPIN`` ``ADD``. A cash dividend (``rate`` per share) books a ``DIV`` (``CDIV``) and moves cash;
  a short pays it.

Called by :class:`~brokerops.sim.venue.Venue` with the venue's and every book's lock held.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack
from decimal import ROUND_DOWN, Decimal

from .book import Book
from .fills import QTY_STEP
from .market import Market
from .model import Asset, fmt_decimal

PRICE_PLACES = Decimal("0.0001")
CENT = Decimal("0.01")
BRACKET_CLASSES = frozenset({"bracket", "oco", "oto"})
KINDS = ("split", "merger", "name_change", "spin_off", "cash_dividend")


def _positive(name: str, value: object) -> Decimal:
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{name} is not a number: {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise ValueError(f"{name} must be a positive number")
    return number


def _qty(value: Decimal) -> Decimal:
    return value.quantize(QTY_STEP, rounding=ROUND_DOWN)


def _leg(
    book: Book,
    kind: str,
    sub_type: str,
    leg: str,
    asset: Asset,
    qty: Decimal,
    price: Decimal,
    old: Decimal,
    new: Decimal,
    value: Decimal,
    **extra: object,
) -> dict:
    """One leg of a corporate action; ``value`` is the holding's, unchanged by the action."""
    value = abs(value).quantize(CENT)
    row = {
        "activity_type": kind,
        "activity_sub_type": sub_type,
        "net_amount": "0",
        "description": f"{leg}, From QTY:{fmt_decimal(old)}, To QTY:{fmt_decimal(new)}, "
        f"Position Value:{fmt_decimal(value)}",
        "symbol": asset.position_symbol,
        "qty": fmt_decimal(qty),
        "price": fmt_decimal(price),
        **extra,
    }
    return book.ledger.post(row)


def split(market: Market, books: Iterable[Book], symbol: str, new_rate, old_rate=1) -> list[dict]:
    new_rate, old_rate = _positive("new_rate", new_rate), _positive("old_rate", old_rate)
    if new_rate == old_rate:
        raise ValueError("a split needs new_rate different from old_rate")
    asset = market.get(symbol)
    ratio = new_rate / old_rate
    sub_type = "FSPLIT" if ratio > 1 else "RSPLIT"
    old_price = asset.price
    new_price = (old_price / ratio).quantize(PRICE_PLACES)
    posted: list[dict] = []
    books = list(books)
    with ExitStack() as revaluing:
        for book in books:
            revaluing.enter_context(book.revaluing(asset))
        market.move_price(asset, new_price, (asset.lastday_price / ratio).quantize(PRICE_PLACES))
        for book in books:
            position = book.account.position(asset)
            if position is not None:
                old, new = position.qty, _qty(position.qty * ratio)
                position.qty = new
                position.avg_entry_price = position.avg_entry_price / ratio
                posted.append(
                    _leg(
                        book,
                        "SPLIT",
                        sub_type,
                        "REMOVE",
                        asset,
                        -old,
                        old_price,
                        old,
                        new,
                        old * old_price,
                    )
                )
                posted.append(
                    _leg(
                        book,
                        "SPLIT",
                        sub_type,
                        "ADD",
                        asset,
                        new,
                        new_price,
                        old,
                        new,
                        old * old_price,
                    )
                )
            _adjust_resting(book, asset, ratio)
    market.record_trade(asset, new_price)
    return posted


def _adjust_resting(book: Book, asset: Asset, ratio: Decimal) -> None:
    now = book.stamps.now()
    for order in book.orders.open_on(asset):
        if order.time_in_force != "gtc" or order.order_class in BRACKET_CLASSES:
            continue
        if order.qty is not None:
            order.qty = _qty(order.qty * ratio)
            order.filled_qty = _qty(order.filled_qty * ratio)
        if order.limit_price is not None:
            order.limit_price = (order.limit_price / ratio).quantize(PRICE_PLACES)
        if order.stop_price is not None:
            order.stop_price = (order.stop_price / ratio).quantize(PRICE_PLACES)
        order.updated_at = now
        order.touch()


def _successor(market: Market, old: Asset, symbol: str, price: Decimal) -> Asset:
    existing = market.find(symbol)
    if existing is not None:
        return existing
    asset, _ = market.add(symbol, asset_class=old.asset_class, exchange=old.exchange, price=price)
    return asset


def move_holdings(
    market: Market,
    books: Iterable[Book],
    symbol: str,
    into: str,
    *,
    kind: str,
    rate=1,
    cash_rate=0,
) -> list[dict]:
    """A merger (``kind`` ``MA``) or a name change (``NC``): see the module docstring."""
    rate = _positive("rate", rate)
    cash_rate = Decimal(str(cash_rate))
    if cash_rate < 0:
        raise ValueError("cash_rate must not be negative")
    old = market.get(symbol)
    if old.symbol.upper() == into.strip().upper():
        raise ValueError("the new symbol must differ from the old one")
    new = _successor(market, old, into.strip().upper(), (old.price / rate).quantize(PRICE_PLACES))
    sub_type = "SNC" if kind == "NC" else ("SCMA" if cash_rate else "SMA")
    posted: list[dict] = []
    for book in books:
        for order in book.orders.open_on(old):
            book.engine.cancel(order)
        position = book.account.position(old)
        if position is None:
            continue
        qty, avg = position.qty, position.avg_entry_price
        moved = _qty(qty * rate)
        book.account.drop_position(old)
        book.account.move_position(new, moved, avg / rate)
        cash = (qty * cash_rate).quantize(CENT)
        book.account.cash += cash
        posted.append(
            _leg(book, kind, sub_type, "REMOVE", old, -qty, old.price, qty, moved, qty * old.price)
        )
        posted.append(
            _leg(
                book,
                kind,
                sub_type,
                "ADD",
                new,
                moved,
                new.price,
                qty,
                moved,
                moved * new.price,
                net_amount=fmt_decimal(cash),
            )
        )
    market.set_fields(old.symbol, {"status": "inactive", "tradable": False})
    return posted


def spin_off(
    market: Market, books: Iterable[Book], symbol: str, new_symbol: str, rate, price
) -> list[dict]:
    rate, price = _positive("rate", rate), _positive("price", price)
    source = market.get(symbol)
    new = _successor(market, source, new_symbol.strip().upper(), price)
    posted: list[dict] = []
    for book in books:
        position = book.account.position(source)
        if position is None:
            continue
        qty = _qty(position.qty * rate)
        if not qty:
            continue
        book.account.move_position(new, qty, new.price)
        posted.append(
            _leg(
                book, "SPIN", "SPIN", "ADD", new, qty, new.price, position.qty, qty, qty * new.price
            )
        )
    return posted


def cash_dividend(market: Market, books: Iterable[Book], symbol: str, rate) -> list[dict]:
    rate = _positive("rate", rate)
    asset = market.get(symbol)
    posted: list[dict] = []
    for book in books:
        position = book.account.position(asset)
        if position is None:
            continue
        amount = (position.qty * rate).quantize(CENT)  # a short pays it
        book.account.cash += amount
        row = {
            "activity_type": "DIV",
            "activity_sub_type": "CDIV",
            "net_amount": fmt_decimal(amount),
            "description": f"Cash DIV @ {fmt_decimal(rate)}, Pos QTY: {fmt_decimal(position.qty)}",
            "symbol": asset.position_symbol,
            "qty": fmt_decimal(position.qty),
            "per_share_amount": fmt_decimal(rate),
        }
        posted.append(book.ledger.post(row))
    return posted


_TERMS = {
    "split": {"symbol", "new_rate", "old_rate"},
    "merger": {"symbol", "new_symbol", "rate", "cash_rate"},
    "name_change": {"symbol", "new_symbol"},
    "spin_off": {"symbol", "new_symbol", "rate", "price"},
    "cash_dividend": {"symbol", "rate"},
}


def apply(market: Market, books: list[Book], kind: str, terms: dict[str, object]) -> list[dict]:
    """One corporate action by name (the control endpoint's body): ``ValueError`` for bad terms."""
    terms = dict(terms)
    unknown = sorted(set(terms) - _TERMS.get(kind, set(terms)))
    if unknown:  # a misspelt term would otherwise be dropped and its default applied
        raise ValueError(f"{kind} takes no {', '.join(map(repr, unknown))}")
    try:
        symbol = str(terms.pop("symbol"))
        if kind == "split":
            return split(market, books, symbol, terms.pop("new_rate"), terms.pop("old_rate", 1))
        if kind in ("merger", "name_change"):
            code = "MA" if kind == "merger" else "NC"
            into = str(terms.pop("new_symbol"))
            extra = {"rate": terms.pop("rate", 1), "cash_rate": terms.pop("cash_rate", 0)}
            if kind == "name_change":
                extra = {}
            return move_holdings(market, books, symbol, into, kind=code, **extra)
        if kind == "spin_off":
            new_symbol = str(terms.pop("new_symbol"))
            return spin_off(
                market, books, symbol, new_symbol, terms.pop("rate"), terms.pop("price")
            )
        if kind == "cash_dividend":
            return cash_dividend(market, books, symbol, terms.pop("rate"))
    except KeyError as missing:
        raise ValueError(f"{kind} needs {missing.args[0]!r}") from None
    raise ValueError(f"unknown corporate action {kind!r}; one of {', '.join(KINDS)}")
